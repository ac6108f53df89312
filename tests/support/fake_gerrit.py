"""A protocol-faithful fake of Gerrit: its change REST API and ``refs/for`` uploads over real git.

Why this module exists: Gerrit cannot run where the tests run, and Gerrit is unlike the
pull-request hosts — a change is made by *pushing*, identified by the ``Change-Id`` footer, and
versioned as patch sets under ``refs/changes/``. A mock would test Revisor against Revisor's idea
of that. This fake implements it from Gerrit's documentation, on 127.0.0.1:

- **Uploads are real pushes.** Projects are bare repositories served over smart HTTP by
  :class:`~tests.support.githttp.GitHttpServer`. Each gets ``receive.procReceiveRefs = refs/for``
  (and ``refs/changes``) and a real ``proc-receive`` hook (git's hook for exactly this: receive-pack
  hands it the commands for those refs, after the pushed objects are in place, and the hook reports
  ``ok``/``ng`` per ref; see githooks(5)). The hook calls back into this server, which — as
  Gerrit's ReceiveCommits does (https://gerrit-review.googlesource.com/Documentation/user-upload.html)
  — rejects a commit without a footer Change-Id ("missing Change-Id in message footer"), creates
  a change or adds a patch set by Change-Id, publishes ``refs/changes/NN/<change>/<patch set>``,
  honours ``topic=`` and ``hashtag=`` push options (``-o`` or ``%`` suffix), refuses closed changes
  and "no new changes", checks Forge Author / Forge Committer, and never lets ``refs/for/*``
  become a real ref.
- **The REST API** answers under ``/a/`` with HTTP basic authentication (the account's HTTP
  password), every JSON body behind the ``)]}'`` XSSI guard, errors as ``text/plain``, exactly the
  endpoints of https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html that
  Revisor calls (cited beside each route): query (``q``, ``o``, ``n``, ``S``, ``_more_changes``),
  get, messages, set review (label votes with their ranges), mergeable, submit, abandon, restore.
- **Submitting really moves the branch** in the bare repository, per the project's submit type
  (``MERGE_IF_NECESSARY``, ``MERGE_ALWAYS``, ``FAST_FORWARD_ONLY``, ``REBASE_IF_NECESSARY``), after
  checking the submit requirements (a maximal vote and no veto on each required label, on the
  current patch set). A conflict or a non-fast-forward is refused with 409 and Gerrit's message.

Fault injection (from :class:`~tests.support.fake_scm.FakeRestServer`) works on every route,
by the route's documentation anchor (``submit-change``, ``set-review``, …) and on uploads
(``receive``: e.g. 500 after the change was created, so the push reports a failure).

Deviations: the git and REST endpoints listen on two ports (Gerrit serves both on one); only the
query operators Revisor uses are understood; permissions are not modelled beyond authentication
and the Forge Author/Committer checks (use fault injection for 403s); no NoteDb ``meta`` refs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pygit2

from tests.support.fake_scm import (
    Answer,
    GitHostingServer,
    HttpError,
    RestRequest,
    commit_tree,
    git,
    is_ancestor,
    merge_commits,
    read_ref,
    update_ref,
)

__all__ = ["FakeGerrit", "GerritAccount", "GerritChange", "footer_change_id"]

XSSI = b")]}'\n"
_DOCS = "https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html"
_A = r"(?:/a)?"
_CHANGE = _A + r"/changes/(?P<id>[^/]+)"
_SUBMIT_TYPES = ("MERGE_IF_NECESSARY", "MERGE_ALWAYS", "FAST_FORWARD_ONLY", "REBASE_IF_NECESSARY")
_LABEL_TEXT = {-2: "This shall not be submitted", -1: "I would prefer this is not submitted as is",
               0: "No score", 1: "Looks good to me, but someone else must approve",
               2: "Looks good to me, approved"}
_VERIFIED_TEXT = {-1: "Fails", 0: "No score", 1: "Verified"}
_CHANGE_ID = re.compile(r"Change-Id:\s*(\S+)\s*")
_KEY_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*:\s*\S.*")


def _stamp(when: datetime | None = None) -> str:
    """Gerrit's timestamp format: UTC, nanoseconds."""
    return (when or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S.%f") + "000"


def _value(v: int) -> str:
    return f"+{v}" if v > 0 else (" 0" if v == 0 else str(v))


def footer_change_id(message: str) -> tuple[str | None, str | None]:
    """(Change-Id, None) or (None, Gerrit's reason) for a commit message, the way Gerrit reads
    it: only the last paragraph (the footer) counts, and it must not be the only paragraph
    (https://gerrit-review.googlesource.com/Documentation/user-changeid.html)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", message.strip()) if p.strip()]
    lines = paragraphs[-1].splitlines() if len(paragraphs) > 1 else []
    if lines and not all(_KEY_VALUE.fullmatch(x) for x in lines):
        lines = []
    ids = [m.group(1) for x in lines if (m := _CHANGE_ID.fullmatch(x))]
    if not ids:
        return None, "missing Change-Id in message footer"
    if len(ids) > 1:
        return None, "multiple Change-Id lines in message footer"
    if not re.fullmatch(r"I[0-9a-f]{40}", ids[0]):
        return None, "invalid Change-Id line format in message footer"
    return ids[0], None


@dataclass
class GerritAccount:
    id: int
    username: str
    password: str = field(repr=False)
    name: str
    email: str
    forge_author: bool = False
    forge_committer: bool = False

    def json(self, detailed: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {"_account_id": self.id, "name": self.name}
        if detailed:
            out.update(email=self.email, username=self.username)
        return out


@dataclass
class PatchSet:
    number: int
    commit: str
    uploader: GerritAccount
    ref: str
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Vote:
    account: GerritAccount
    value: int
    date: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class ChangeMessage:
    author: GerritAccount | None
    message: str
    revision: int
    tag: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    date: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class GerritChange:
    number: int
    project: str
    branch: str
    change_id: str
    owner: GerritAccount
    topic: str | None = None
    hashtags: list[str] = field(default_factory=list)
    status: str = "NEW"
    patch_sets: list[PatchSet] = field(default_factory=list)
    votes: dict[int, dict[str, dict[str, Vote]]] = field(default_factory=dict)  # ps → label → user
    messages: list[ChangeMessage] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime = field(default_factory=lambda: datetime.now(UTC))
    submitted: datetime | None = None

    @property
    def current(self) -> PatchSet:
        return self.patch_sets[-1]


@dataclass
class GerritProject:
    name: str
    path: Path
    submit_type: str = "MERGE_IF_NECESSARY"


_HOOK = '''#!{python}
"""proc-receive hook of the fake Gerrit: hands refs/for (and refs/changes) commands to the
fake over HTTP and reports its verdicts back to receive-pack (githooks(5), "proc-receive")."""
import json, os, sys, urllib.error, urllib.request

CALLBACK, PROJECT = {callback!r}, {project!r}
inp, out = sys.stdin.buffer, sys.stdout.buffer


def read():
    head = inp.read(4)
    if len(head) < 4:
        raise SystemExit("proc-receive: input ended early")
    size = int(head, 16)
    return None if size == 0 else inp.read(size - 4).rstrip(b"\\n")


def write(data):
    out.write(b"%04x" % (len(data) + 4) + data)


def lines():
    while (item := read()) is not None:
        yield item


version = list(lines())
write(b"version=1\\0push-options")
out.write(b"0000")
out.flush()
commands = [c.decode().split(" ", 2) for c in lines()]
options = [o.decode() for o in lines()] if b"push-options" in version[0] else []
body = json.dumps({{"project": PROJECT, "user": os.environ.get("REMOTE_USER"),
                   "commands": commands, "push_options": options}}).encode()
request = urllib.request.Request(CALLBACK, data=body, method="POST",
                                 headers={{"Content-Type": "application/json"}})
try:
    with urllib.request.urlopen(request, timeout=60) as answer:
        data = answer.read()
    verdict = json.loads(data[data.index(b"{{"):])
except (urllib.error.URLError, OSError, ValueError) as exc:
    verdict = {{"results": [{{"ref": c[2], "ok": False, "reason": "internal server error"}}
                            for c in commands], "messages": [f"error: {{exc}}"]}}
for message in verdict.get("messages", []):
    sys.stderr.write(message + "\\n")
for result in verdict["results"]:
    if result["ok"]:
        write(("ok " + result["ref"]).encode())
    else:
        write(("ng " + result["ref"] + " " + result["reason"]).encode())
out.write(b"0000")
out.flush()
'''


class _Reject(Exception):
    pass


class FakeGerrit(GitHostingServer):
    """Gerrit on 127.0.0.1: REST at :attr:`url` (``/a/…``), git at ``git.url_for(project)``.

    ``labels`` maps each label to its (min, max) range; ``required`` are the labels whose
    submit requirement needs a maximal vote and no minimal one on the current patch set.
    """

    server_name = "gerrit"

    def __init__(
        self,
        root: Path,
        *,
        username: str = "revisor-bot",
        password: str = "gerrit-http-pa55word",  # noqa: S107 - a test server's
        email: str = "revisor@example.com",
        labels: Mapping[str, tuple[int, int]] | None = None,
        required: tuple[str, ...] = ("Code-Review",),
    ) -> None:
        super().__init__(root, (username, password))
        self.labels = dict(labels or {"Code-Review": (-2, 2), "Verified": (-1, 1)})
        self.required = required
        self.accounts: dict[str, GerritAccount] = {}
        self.projects: dict[str, GerritProject] = {}
        self.changes: dict[int, GerritChange] = {}
        self.bot = self.add_account(username, password, "Revisor Bot", email, forge_author=True)
        self.server = GerritAccount(0, "gerrit", "", "Gerrit Code Review", "gerrit@localhost")
        self._register()

    # -- set-up -----------------------------------------------------------------------------------
    def add_account(self, username: str, password: str, name: str, email: str, *,
                    forge_author: bool = False, forge_committer: bool = False) -> GerritAccount:
        account = GerritAccount(1000000 + len(self.accounts), username, password, name, email,
                                forge_author, forge_committer)
        self.accounts[username] = account
        return account

    def create_project(self, name: str, files: Mapping[str, str] | None = None, *,
                       branch: str = "main", submit_type: str = "MERGE_IF_NECESSARY",
                       ) -> tuple[Path, str]:
        """A project with one commit on ``branch``; (its bare repository, its git URL)."""
        assert submit_type in _SUBMIT_TYPES
        path = self.root / f"{name}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["git", "init", "-q", "--bare", "-b", branch, str(path)], check=True)
        r = pygit2.Repository(str(path))
        tree = r.TreeBuilder()
        for rel, text in (files or {"README.md": "hello\n"}).items():
            assert "/" not in rel, "flat files only"
            tree.insert(rel, r.create_blob(text.encode()), pygit2.GIT_FILEMODE_BLOB)
        sig = pygit2.Signature("Seed", "seed@example.com", 1700000000, 0)
        r.create_commit(f"refs/heads/{branch}", sig, sig, "initial commit\n", tree.write(), [])
        git(path, "config", "receive.advertisePushOptions", "true")
        git(path, "config", "--add", "receive.procReceiveRefs", "refs/for")
        git(path, "config", "--add", "receive.procReceiveRefs", "refs/changes")
        hook = path / "hooks" / "proc-receive"
        hook.write_text(_HOOK.format(python=sys.executable, callback=f"{self.url}/_fake/receive",
                                     project=name))
        hook.chmod(0o755)
        self.projects[name] = GerritProject(name, path, submit_type)
        return path, self.git.url_for(f"{name}.git")

    # -- protocol details -------------------------------------------------------------------------
    def authenticate(self, request: RestRequest) -> None:
        # https://gerrit-review.googlesource.com/Documentation/rest-api.html#authentication
        if request.operation == "receive":
            return
        if not request.path.startswith("/a/"):
            if request.method != "GET":
                raise HttpError(403, "Authentication required")
            return
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        user = password = ""
        if scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                user, _, password = base64.b64decode(value).decode().partition(":")
        account = self.accounts.get(user)
        if account is None or not password or password != account.password:
            raise HttpError(401, "Unauthorized",
                            {"WWW-Authenticate": 'Basic realm="Gerrit Code Review"'})
        request.user = user

    def error_answer(self, status: int, message: str) -> Answer:
        return Answer(status, (message + "\n").encode(),
                      {"Content-Type": "text/plain;charset=utf-8"})

    def encode(self, value: Any) -> tuple[str, bytes]:
        return "application/json;charset=utf-8", XSSI + json.dumps(value, indent=1).encode()

    def _caller(self, request: RestRequest) -> GerritAccount:
        if request.user is None:
            raise HttpError(403, "Authentication required")
        return self.accounts[request.user]

    def _change(self, ident: str) -> GerritChange:
        """A change by any of Gerrit's ids: ``project~number``, ``number``,
        ``project~branch~Change-Id`` or a unique ``Change-Id``
        (https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#change-id)."""
        parts = ident.split("~")
        found: list[GerritChange] = []
        if len(parts) == 2 and parts[1].isdigit():
            ch = self.changes.get(int(parts[1]))
            found = [ch] if ch and ch.project == parts[0] else []
        elif len(parts) == 1 and ident.isdigit():
            found = [self.changes[int(ident)]] if int(ident) in self.changes else []
        elif len(parts) == 3:
            found = [c for c in self.changes.values()
                     if (c.project, c.branch, c.change_id) == tuple(parts)]
        elif len(parts) == 1:
            found = [c for c in self.changes.values() if c.change_id == ident]
        if len(found) != 1:
            raise HttpError(404, f"Not found: {ident}")
        return found[0]

    def _revision(self, ch: GerritChange, rev: str) -> PatchSet:
        if rev == "current":
            return ch.current
        for ps in ch.patch_sets:
            if rev == str(ps.number) or (len(rev) >= 4 and ps.commit.startswith(rev)):
                return ps
        raise HttpError(404, f"Not found: {rev}")

    def change_json(self, ch: GerritChange, options: set[str]) -> dict[str, Any]:
        # ChangeInfo: https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#change-info
        detailed = "DETAILED_ACCOUNTS" in options
        project = self.projects[ch.project]
        r = pygit2.Repository(str(project.path))
        commit = r[ch.current.commit].peel(pygit2.Commit)
        stats = (r.diff(commit.parents[0], commit).stats if commit.parents
                 else r.diff(None, commit).stats)
        info: dict[str, Any] = {
            "id": f"{quote(ch.project, safe='')}~{ch.number}",
            "project": ch.project, "branch": ch.branch, "hashtags": list(ch.hashtags),
            "change_id": ch.change_id, "subject": commit.message.split("\n", 1)[0],
            "status": ch.status, "created": _stamp(ch.created), "updated": _stamp(ch.updated),
            "insertions": stats.insertions, "deletions": stats.deletions,
            "_number": ch.number, "owner": ch.owner.json(detailed),
            "current_revision_number": ch.current.number,
        }
        if ch.topic:
            info["topic"] = ch.topic
        if ch.submitted:
            info["submitted"] = _stamp(ch.submitted)
        if ch.status == "NEW":
            info["mergeable"] = self._mergeable(ch)[0]
        if options & {"LABELS", "DETAILED_LABELS"}:
            info["labels"] = self._labels_json(ch, "DETAILED_LABELS" in options)
        if options & {"CURRENT_REVISION", "ALL_REVISIONS"}:
            info["current_revision"] = ch.current.commit
            chosen = ch.patch_sets if "ALL_REVISIONS" in options else [ch.current]
            with_commit = bool(options & {"CURRENT_COMMIT", "ALL_COMMITS"})
            info["revisions"] = {ps.commit: self._revision_json(r, ch, ps, with_commit, detailed)
                                 for ps in chosen}
        if "MESSAGES" in options:
            info["messages"] = [self._message_json(m) for m in ch.messages]
        return info

    def _revision_json(self, r: pygit2.Repository, ch: GerritChange, ps: PatchSet,
                       with_commit: bool, detailed: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": "REWORK", "_number": ps.number, "created": _stamp(ps.created),
            "uploader": ps.uploader.json(detailed), "ref": ps.ref,
            "fetch": {"http": {"url": self.git.url_for(f"{ch.project}.git"), "ref": ps.ref}},
        }
        if with_commit:
            c = r[ps.commit].peel(pygit2.Commit)

            def person(s: pygit2.Signature) -> dict[str, Any]:
                return {"name": s.name, "email": s.email, "tz": s.offset,
                        "date": _stamp(datetime.fromtimestamp(s.time, UTC))}

            out["commit"] = {
                "parents": [{"commit": str(p.id), "subject": p.message.split("\n", 1)[0]}
                            for p in c.parents],
                "author": person(c.author), "committer": person(c.committer),
                "subject": c.message.split("\n", 1)[0], "message": c.message,
            }
        return out

    def _labels_json(self, ch: GerritChange, detailed: bool) -> dict[str, Any]:
        # LabelInfo: https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#label-info
        out: dict[str, Any] = {}
        votes = ch.votes.get(ch.current.number, {})
        for label, (low, high) in self.labels.items():
            cast = [v for v in votes.get(label, {}).values() if v.value]
            info: dict[str, Any] = {}
            for key, lo, hi in (("rejected", low, low), ("approved", high, high),
                                ("disliked", low + 1, -1), ("recommended", 1, high - 1)):
                match = [v for v in cast if lo <= v.value <= hi]
                if match:
                    info[key] = match[0].account.json(detailed)
            if detailed:
                texts = _VERIFIED_TEXT if (low, high) == (-1, 1) else _LABEL_TEXT
                info["all"] = [{**v.account.json(True), "value": v.value, "date": _stamp(v.date)}
                               for v in cast]
                info["values"] = {_value(v): texts.get(v, str(v)) for v in range(low, high + 1)}
                info["default_value"] = 0
            out[label] = info
        return out

    def _message_json(self, m: ChangeMessage) -> dict[str, Any]:
        # ChangeMessageInfo: https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#change-message-info
        out: dict[str, Any] = {"id": m.id, "date": _stamp(m.date), "message": m.message,
                               "_revision_number": m.revision}
        if m.author is not None:
            out["author"] = m.author.json(True)
        if m.tag:
            out["tag"] = m.tag
        return out

    def _say(self, ch: GerritChange, author: GerritAccount | None, text: str,
             tag: str | None = None) -> None:
        ch.messages.append(ChangeMessage(author, text, ch.current.number, tag))
        ch.updated = datetime.now(UTC)

    # -- routes -----------------------------------------------------------------------------------
    def _register(self) -> None:
        add = self.add_route
        add("GET", _A + r"/changes/", "list-changes", self._query)
        add("GET", _CHANGE, "get-change", self._get)
        add("GET", _CHANGE + r"/detail", "get-change-detail", self._detail)
        add("GET", _CHANGE + r"/messages", "list-change-messages", self._messages)
        add("POST", _CHANGE + r"/revisions/(?P<rev>[^/]+)/review", "set-review", self._review)
        add("GET", _CHANGE + r"/revisions/(?P<rev>[^/]+)/mergeable", "get-mergeable",
            self._get_mergeable)
        add("POST", _CHANGE + r"/submit", "submit-change", self._submit)
        add("POST", _CHANGE + r"/abandon", "abandon-change", self._abandon)
        add("POST", _CHANGE + r"/restore", "restore-change", self._restore)
        add("POST", r"/_fake/receive", "receive", self._receive)  # the hook's callback

    def _options(self, request: RestRequest) -> set[str]:
        return {o.upper() for o in request.query.get("o", [])}

    def _query(self, request: RestRequest) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#list-changes
        query = request.arg("q") or ""
        limit = int(request.arg("n") or 500)
        start = int(request.arg("S") or request.arg("start") or 0)
        with self.lock:
            terms = self._parse(query)
            found = [c for c in self.changes.values() if all(t(c, request) for t in terms)]
            found.sort(key=lambda c: (c.updated, c.number), reverse=True)
            page = found[start:start + limit]
            out = [self.change_json(c, self._options(request)) for c in page]
            if out and start + limit < len(found):
                out[-1]["_more_changes"] = True
            return Answer(200, out)

    def _parse(self, query: str) -> list[Any]:
        """The search operators Revisor uses (https://gerrit-review.googlesource.com/
        Documentation/user-search.html), joined by AND."""
        terms = []
        for m in re.finditer(r'(\S+?):("(?:[^"\\]|\\.)*"|\S+)|(\S+)', query):
            if m.group(3):
                raise HttpError(400, f"Unsupported query: {m.group(3)}")
            op, raw = m.group(1).lower(), m.group(2)
            value = re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
            terms.append(self._term(op, value))
        return terms

    def _term(self, op: str, value: str) -> Any:
        statuses = {"open": {"NEW"}, "new": {"NEW"}, "merged": {"MERGED"},
                    "abandoned": {"ABANDONED"}, "closed": {"MERGED", "ABANDONED"}}
        if op == "change":
            return lambda c, r: str(c.number) == value or c.change_id == value
        if op == "project":
            return lambda c, r: c.project == value
        if op == "branch":
            return lambda c, r: c.branch == value
        if op in ("status", "is") and value in statuses:
            return lambda c, r: c.status in statuses[value]
        if op == "topic":
            return lambda c, r: c.topic == value
        if op == "hashtag":
            return lambda c, r: value.lower() in (h.lower() for h in c.hashtags)
        if op == "owner":
            return lambda c, r: (c.owner.username == r.user if value == "self"
                                 else value in (c.owner.username, c.owner.email))
        raise HttpError(400, f"Unsupported operator {op}:{value}")

    def _get(self, request: RestRequest, id: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#get-change
        with self.lock:
            return Answer(200, self.change_json(self._change(id), self._options(request)))

    def _detail(self, request: RestRequest, id: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#get-change-detail
        options = self._options(request) | {"LABELS", "DETAILED_LABELS", "DETAILED_ACCOUNTS",
                                            "MESSAGES"}
        with self.lock:
            return Answer(200, self.change_json(self._change(id), options))

    def _messages(self, request: RestRequest, id: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#list-change-messages
        with self.lock:
            return Answer(200, [self._message_json(m) for m in self._change(id).messages])

    def _review(self, request: RestRequest, id: str, rev: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#set-review
        caller = self._caller(request)
        form = request.json() or {}
        labels = form.get("labels") or {}
        with self.lock:
            ch = self._change(id)
            ps = self._revision(ch, rev)
            for name, value in labels.items():
                if name not in self.labels:
                    raise HttpError(400, f'label "{name}" is not a configured label')
                low, high = self.labels[name]
                if not isinstance(value, int) or not low <= value <= high:
                    raise HttpError(400, f'label "{name}": {value} is not a valid value')
            if labels and ch.status != "NEW":
                raise HttpError(409, f"change is {ch.status.lower()}")
            for name, value in labels.items():
                ch.votes.setdefault(ps.number, {}).setdefault(name, {})[caller.username] = Vote(
                    caller, int(value))
            if labels or form.get("message"):
                votes = " ".join(f"{n}{_value(v).strip()}" for n, v in labels.items())
                text = f"Patch Set {ps.number}:{' ' + votes if votes else ''}"
                if form.get("message"):
                    text += "\n\n" + str(form["message"])
                ch.messages.append(ChangeMessage(caller, text, ps.number, form.get("tag")))
                ch.updated = datetime.now(UTC)
            return Answer(200, {"labels": labels})

    def _mergeable(self, ch: GerritChange) -> tuple[bool, str | None]:
        """(mergeable, the target's new commit) under the project's submit type."""
        project = self.projects[ch.project]
        target = read_ref(project.path, f"refs/heads/{ch.branch}")
        assert target is not None
        commit = ch.current.commit
        ff = is_ancestor(project.path, target, commit)
        if project.submit_type == "FAST_FORWARD_ONLY":
            return ff, commit if ff else None
        if ff and project.submit_type != "MERGE_ALWAYS":
            return True, commit
        if project.submit_type == "REBASE_IF_NECESSARY":
            parent = pygit2.Repository(str(project.path))[commit].peel(pygit2.Commit).parent_ids
            tree, _ = merge_commits(project.path, target, commit, str(parent[0]))
        else:
            tree, _ = merge_commits(project.path, target, commit)
        return tree is not None, tree

    def _get_mergeable(self, request: RestRequest, id: str, rev: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#get-mergeable
        with self.lock:
            ch = self._change(id)
            self._revision(ch, rev)
            mergeable, _ = self._mergeable(ch)
            return Answer(200, {"submit_type": self.projects[ch.project].submit_type,
                                "strategy": "recursive", "mergeable": mergeable,
                                "commit_merged": False, "content_merged": False})

    def _submit(self, request: RestRequest, id: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#submit-change
        caller = self._caller(request)
        with self.lock:
            ch = self._change(id)
            if ch.status != "NEW":
                raise HttpError(409, f"change is {ch.status.lower()}")
            problems = "Failed to submit 1 change due to the following problems:\n"
            votes = ch.votes.get(ch.current.number, {})
            for label in self.required:
                low, high = self.labels[label]
                values = [v.value for v in votes.get(label, {}).values()]
                if low in values or high not in values:
                    raise HttpError(409, f"{problems}Change {ch.number}: submit requirement "
                                         f"'{label}' is unsatisfied.")
            project = self.projects[ch.project]
            branch = f"refs/heads/{ch.branch}"
            target = read_ref(project.path, branch)
            assert target is not None
            new = self._land(ch, project, target, caller, problems)
            if not update_ref(project.path, branch, new, target):
                raise HttpError(409, f"{problems}Change {ch.number}: the branch moved while "
                                     "submitting; try again")
            ch.status, ch.submitted = "MERGED", datetime.now(UTC)
            self._say(ch, self.server, f"Change has been successfully merged by {caller.name}",
                      "autogenerated:gerrit:merged")
            return Answer(200, self.change_json(ch, set()))

    def _land(self, ch: GerritChange, project: GerritProject, target: str,
              caller: GerritAccount, problems: str) -> str:
        """The branch's new commit for the project's submit type, or a 409 as Gerrit says it."""
        commit = ch.current.commit
        ok, tree = self._mergeable(ch)
        st = project.submit_type
        if not ok and st == "FAST_FORWARD_ONLY":
            raise HttpError(409, f"{problems}Change {ch.number}: Project policy requires all "
                                 "submissions to be a fast-forward. Please rebase the change "
                                 "locally and upload again for review.")
        if not ok:
            raise HttpError(409, f"{problems}Change {ch.number}: Change could not be merged due "
                                 "to a path conflict. Please rebase the change locally and "
                                 "upload the rebased commit for review.")
        if tree == commit:
            return commit  # fast-forward
        assert tree is not None
        r = pygit2.Repository(str(project.path))
        now = int(datetime.now(UTC).timestamp())
        server = pygit2.Signature(self.server.name, self.server.email, now, 0)
        c = r[commit].peel(pygit2.Commit)
        if st == "REBASE_IF_NECESSARY":
            rebased = commit_tree(project.path, tree, [target], c.message, c.author, server)
            ref = self._ref(ch.number, ch.current.number + 1)
            git(project.path, "update-ref", ref, rebased, "")
            ch.patch_sets.append(PatchSet(ch.current.number + 1, rebased, caller, ref))
            return rebased
        author = pygit2.Signature(caller.name, caller.email, now, 0)
        message = f"Merge \"{c.message.split(chr(10), 1)[0]}\"\n"
        return commit_tree(project.path, tree, [target, commit], message, author, server)

    def _abandon(self, request: RestRequest, id: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#abandon-change
        caller = self._caller(request)
        form = request.json() or {}
        with self.lock:
            ch = self._change(id)
            if ch.status != "NEW":
                raise HttpError(409, f"change is {ch.status.lower()}")
            ch.status = "ABANDONED"
            note = f"\n\n{form['message']}" if form.get("message") else ""
            self._say(ch, caller, f"Abandoned{note}", "autogenerated:gerrit:abandon")
            return Answer(200, self.change_json(ch, set()))

    def _restore(self, request: RestRequest, id: str) -> Answer:
        # https://gerrit-review.googlesource.com/Documentation/rest-api-changes.html#restore-change
        caller = self._caller(request)
        with self.lock:
            ch = self._change(id)
            if ch.status != "ABANDONED":
                raise HttpError(409, f"change is {ch.status.lower()}")
            ch.status = "NEW"
            self._say(ch, caller, "Restored", "autogenerated:gerrit:restore")
            return Answer(200, self.change_json(ch, set()))

    # -- uploads ----------------------------------------------------------------------------------
    @staticmethod
    def _ref(number: int, patch_set: int) -> str:
        return f"refs/changes/{number % 100:02d}/{number}/{patch_set}"

    def _receive(self, request: RestRequest) -> Answer:
        """The proc-receive hook's callback: one verdict per ref (the Gerrit side of a push)."""
        form = request.json() or {}
        with self.lock:
            project = self.projects[form["project"]]
            account = self.accounts.get(str(form.get("user")))
            results, messages = [], []
            for _old, new, ref in form["commands"]:
                try:
                    if account is None:
                        raise _Reject("Unauthorized")
                    messages += self._upload(project, account, ref, new, form["push_options"])
                    results.append({"ref": ref, "ok": True})
                except _Reject as exc:
                    results.append({"ref": ref, "ok": False, "reason": str(exc)})
            return Answer(200, {"results": results, "messages": messages})

    def _upload(self, project: GerritProject, account: GerritAccount, ref: str, new: str,
                push_options: list[str]) -> list[str]:
        # https://gerrit-review.googlesource.com/Documentation/user-upload.html
        if ref.startswith("refs/changes/"):
            raise _Reject("upload to refs/changes not allowed")
        if new == "0" * 40:
            raise _Reject("cannot delete references in refs/for")
        branch, _, suffix = ref.removeprefix("refs/for/").partition("%")
        topic, hashtags = None, []
        for option in [o for o in suffix.split(",") if o] + push_options:
            key, _, value = option.partition("=")
            if key == "topic":
                topic = value
            elif key in ("hashtag", "t"):
                hashtags.append(value)
            elif key not in ("r", "cc", "m", "message", "wip", "ready", "private", "notify"):
                raise _Reject(f'"--{key}" is not a valid option')
        path = project.path
        if read_ref(path, f"refs/heads/{branch}") is None:
            raise _Reject(f"branch {branch} not found")
        listed = git(path, "rev-list", "--reverse", "--topo-order", new, "--not", "--branches",
                     "--glob=refs/changes/*")
        commits = listed.split()
        if not commits:
            raise _Reject("no new changes")
        r = pygit2.Repository(str(path))
        plan = []
        for sha in commits:
            c = r[sha].peel(pygit2.Commit)
            change_id, problem = footer_change_id(c.message)
            if change_id is None:
                raise _Reject(f"commit {sha[:7]}: {problem}")
            if c.author.email != account.email and not account.forge_author:
                raise _Reject(f"commit {sha[:7]}: invalid author")
            if c.committer.email != account.email and not account.forge_committer:
                raise _Reject(f"commit {sha[:7]}: invalid committer")
            existing = [ch for ch in self.changes.values()
                        if (ch.project, ch.branch, ch.change_id) ==
                        (project.name, branch, change_id)]
            if existing and existing[0].status != "NEW":
                raise _Reject(f"change {self.url}/c/{project.name}/+/{existing[0].number} closed")
            plan.append((sha, c, existing[0] if existing else None, change_id))
        lines = ["Processing changes: done", "", "SUCCESS", ""]
        for sha, c, change, change_id in plan:
            subject = c.message.split("\n", 1)[0]
            if change is None:
                number = max(self.changes, default=0) + 1
                change = GerritChange(number, project.name, branch, change_id, account, topic,
                                      list(dict.fromkeys(hashtags)))
                self.changes[number] = change
                state = " [NEW]"
            else:
                if topic is not None:
                    change.topic = topic
                change.hashtags = list(dict.fromkeys([*change.hashtags, *hashtags]))
                state = ""
            ps_number = len(change.patch_sets) + 1
            ps_ref = self._ref(change.number, ps_number)
            if not update_ref(path, ps_ref, sha, None):
                raise _Reject(f"cannot publish {ps_ref}")
            change.patch_sets.append(PatchSet(ps_number, sha, account, ps_ref))
            self._say(change, account, f"Uploaded patch set {ps_number}.",
                      "autogenerated:gerrit:newPatchSet")
            lines.append(f"  {self.url}/c/{project.name}/+/{change.number} {subject}{state}")
        return [*lines, ""]

    # -- for tests --------------------------------------------------------------------------------
    def by_change_id(self, change_id: str) -> GerritChange:
        with self.lock:
            (found,) = [c for c in self.changes.values() if c.change_id == change_id]
            return found

    def vote(self, number: int, label: str, value: int, account: GerritAccount) -> None:
        """Record a vote on the current patch set, as a reviewer or a CI system would."""
        with self.lock:
            ch = self.changes[number]
            ch.votes.setdefault(ch.current.number, {}).setdefault(label, {})[account.username] = (
                Vote(account, value))
