// Revisor's only script: fills in the last change of each entry of a folder while the server
// is still computing them, and selects "Use this text" when a conflict's text is edited.
// Everything works without it.
(function () {
  "use strict";

  function cell(cls, child) {
    var td = document.createElement("td");
    td.className = cls;
    if (child) { td.appendChild(child); }
    return td;
  }

  function fill(table, entries) {
    var rows = table.querySelectorAll("tbody tr[data-name]");
    for (var i = 0; i < rows.length; i++) {
      var row = rows[i];
      var c = entries[row.getAttribute("data-name")];
      var pending = row.querySelector("td.pending");
      if (!c || !pending) { continue; }
      var a = document.createElement("a");
      a.href = c.url;
      a.textContent = c.summary;
      var time = document.createElement("time");
      time.setAttribute("datetime", c.when);
      time.textContent = c.age;
      row.replaceChild(cell("msg", a), pending);
      var who = cell("author", null);
      who.textContent = c.author;
      row.appendChild(who);
      row.appendChild(cell("when", time));
    }
  }

  function poll(table, delay) {
    var url = table.getAttribute("data-lastcommits");
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        fill(table, data.entries);
        if (data.partial) {
          setTimeout(function () { poll(table, Math.min(delay * 2, 5000)); }, delay);
        } else {
          table.setAttribute("data-partial", "false");
          var note = document.getElementById("filling");
          if (note) { note.textContent = ""; }
        }
      })
      .catch(function () { /* the page stays as rendered */ });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var table = document.getElementById("tree");
    if (table && table.getAttribute("data-partial") === "true") {
      setTimeout(function () { poll(table, 500); }, 300);
    }
    var areas = document.querySelectorAll("textarea[data-choice]");
    for (var i = 0; i < areas.length; i++) {
      areas[i].addEventListener("input", function (ev) {
        var name = ev.target.getAttribute("data-choice");
        var edit = document.querySelector("input[name='" + name + "'][value='edit']");
        if (edit) { edit.checked = true; }
      });
    }
  });
})();
