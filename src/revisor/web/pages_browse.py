"""Browsing pages: sources, branches and tags, folders with the last change of each entry, files,
raw downloads, changes (commits) with their differences, and history.

Why this module exists: it replaces Allura's repository browser (seed 004) for people who are not
git users. Every page reads one pinned snapshot (``Source.view``); the revision and the path travel
as query parameters, so branch names with slashes and file names with ``#``, ``%``, ``?`` or any
Unicode need no special cases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from markupsafe import Markup

from revisor.api.deps import source_for
from revisor.errors import InvalidInput, NotAllowed
from revisor.services.auth import Action
from revisor.services.sources import Source
from revisor.vcs import EntryKind, FileDiff, ObjectId, validate_dir
from revisor.web import content
from revisor.web.deps import Visitor, Web
from revisor.web.listings import last_commits
from revisor.web.render import age, href, seg

__all__ = ["base", "router", "shown_diffs"]

router = APIRouter()

Rev = Annotated[str | None, Query(max_length=1024)]
PathQ = Annotated[str, Query(max_length=4096)]

MAX_FILES_SHOWN = 300
MAX_PATCH_SHOWN = 256 * 1024
LOG_PAGE = 50
README_NAMES = ("readme.md", "readme", "readme.txt")


def base(source: str) -> str:
    return f"/s/{seg(source)}"


def _path(path: str) -> str:
    path = path.strip("/")
    validate_dir(path)
    return path


@router.get("/")
def home(request: Request, web: Web, me: Visitor) -> Response:
    rows = []
    for name in sorted(web.state.rv.config.sources):
        try:
            src = source_for(web.state, me, name, Action.READ)
        except NotAllowed:
            continue
        rows.append({"name": name, "location": src.stored.display_location,
                     "branch": src.stored.target_branch})
    return web.renderer.page(request, "home.html", {"rows": rows})


@router.get("/s/{source}")
def source_home(source: str, web: Web, me: Visitor) -> Response:
    source_for(web.state, me, source, Action.READ)
    return RedirectResponse(href(base(source) + "/tree"), status_code=303)


@router.get("/s/{source}/refs")
def refs(source: str, request: Request, web: Web, me: Visitor) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    repo = src.stored.repository
    branches = sorted(n.removeprefix("refs/heads/") for n in repo.refs("refs/heads/"))
    tags = sorted(n.removeprefix("refs/tags/") for n in repo.refs("refs/tags/"))
    return web.renderer.page(request, "refs.html", {
        "source": source, "branches": branches, "tags": tags,
        "target": src.stored.target_branch})


def _rev(src: Source, rev: str | None) -> str:
    return rev or src.stored.target_branch


@router.get("/s/{source}/tree")
def tree(
    source: str, request: Request, web: Web, me: Visitor, rev: Rev = None, path: PathQ = ""
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    rev = _rev(src, rev)
    path = _path(path)
    snap = src.view(rev)
    if path:
        st = snap.stat(path)
        if st.kind is not EntryKind.DIR:
            return RedirectResponse(href(base(source) + "/blob", rev=rev, path=path), 303)
    entries = sorted(snap.entries(path), key=lambda e: (e.kind is not EntryKind.DIR, e.name))
    listing = last_commits(web.state.rv, src, snap.commit_id, path,
                           web.state.settings.last_commit_budget_s)
    readme: Markup | None = None
    for entry in entries:
        if entry.kind is EntryKind.FILE and entry.name.lower() in README_NAMES:
            if (entry.size or 0) <= content.MAX_SHOWN:
                data = snap.read(entry.path)
                if not content.is_binary(data):
                    text = data.decode("utf-8")
                    readme = (content.markdown_html(text) if entry.name.lower().endswith(".md")
                              else Markup("<pre>%s</pre>") % text)
            break
    return web.renderer.page(request, "tree.html", {
        "source": source, "rev": rev, "path": path, "commit": snap.commit_id,
        "entries": entries, "last": listing.entries, "partial": listing.partial,
        "readme": readme,
    })


@router.get("/s/{source}/lastcommits")
def lastcommits(
    source: str, web: Web, me: Visitor, rev: Rev = None, path: PathQ = ""
) -> JSONResponse:
    """The tree page's progressive fill: what is known now, and whether more is coming."""
    src = source_for(web.state, me, source, Action.READ)
    path = _path(path)
    commit = src.view(_rev(src, rev)).commit_id
    listing = last_commits(web.state.rv, src, commit, path,
                           web.state.settings.last_commit_budget_s)
    entries = {
        name: {"id": c.id, "summary": c.summary, "author": c.author, "age": age(c.when),
               "when": c.when.isoformat() if c.when else "",
               "url": href(base(source) + "/commit", rev=c.id)}
        for name, c in listing.entries.items()
    }
    return JSONResponse({"partial": listing.partial, "entries": entries})


@router.get("/s/{source}/blob")
def blob(
    source: str, request: Request, web: Web, me: Visitor, rev: Rev = None, path: PathQ = ""
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    rev = _rev(src, rev)
    path = _path(path)
    if not path:
        return RedirectResponse(href(base(source) + "/tree", rev=rev), 303)
    snap = src.view(rev)
    st = snap.stat(path)
    if st.kind is EntryKind.DIR:
        return RedirectResponse(href(base(source) + "/tree", rev=rev, path=path), 303)
    ctx: dict[str, object] = {"source": source, "rev": rev, "path": path,
                              "commit": snap.commit_id, "stat": st, "kind": st.kind.value}
    if st.kind is EntryKind.SUBMODULE:
        ctx["shown"] = "submodule"
    elif st.kind is EntryKind.SYMLINK:
        ctx["shown"] = "symlink"
        ctx["target"] = snap.read(path).decode("utf-8", "replace")
    else:
        size = st.size or 0
        if size <= content.MAX_SHOWN:
            data = snap.read(path)
        else:
            with snap.open(path) as f:
                data = f.read(8000)
        kind = content.classify(path, size, data)
        ctx["shown"] = kind.value
        if kind is content.FileKind.TEXT:
            ctx["html"] = content.code_html(path, data.decode("utf-8"))
        elif kind is content.FileKind.MARKDOWN:
            text = data.decode("utf-8")
            ctx["html"] = content.markdown_html(text)
            ctx["source_html"] = content.code_html(path, text)
    return web.renderer.page(request, "blob.html", ctx)


def _disposition(path: str, attachment: bool) -> str:
    name = path.rsplit("/", 1)[-1]
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\;' else "_"
                         for c in name)
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"


@router.get("/s/{source}/raw")
def raw(
    source: str, web: Web, me: Visitor, rev: Rev = None, path: PathQ = "",
    download: Annotated[bool, Query()] = False,
) -> Response:
    """The file's bytes, streamed. Never rendered as a page of this site: images keep their
    type, everything else is plain text or a download, under a sandboxing CSP."""
    src = source_for(web.state, me, source, Action.READ)
    path = _path(path)
    if not path:
        raise InvalidInput("a file path is required")
    snap = src.view(_rev(src, rev))
    st = snap.stat(path)
    if st.kind is EntryKind.DIR:
        raise InvalidInput(f"{path!r} is a folder, not a file")
    if st.kind is EntryKind.SUBMODULE:
        raise InvalidInput(f"{path!r} is a link to another repository, not a file")
    image = content.image_type(path)
    stream = snap.open(path)
    head = stream.peek(8000)[:8000]
    if image and not download:
        media = image
    elif download or content.is_binary(head):
        media, download = "application/octet-stream", True
    else:
        media = "text/plain; charset=utf-8"

    def chunks() -> Iterator[bytes]:
        with stream:
            while chunk := stream.read(1 << 16):
                yield chunk

    headers = {
        "ETag": f'"{st.id}"',
        "Content-Disposition": _disposition(path, download),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'",
    }
    if st.size is not None:
        headers["Content-Length"] = str(st.size)
    return StreamingResponse(chunks(), media_type=media, headers=headers)


def shown_diffs(diffs: list[FileDiff]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for d in diffs[:MAX_FILES_SHOWN]:
        big = len(d.patch) > MAX_PATCH_SHOWN
        hunks = [] if d.binary or big else content.parse_patch(d.patch)
        out.append({
            "diff": d, "path": d.change.path, "old_path": d.change.old_path,
            "kind": d.change.kind.value, "binary": d.binary, "too_big": big,
            "hunks": hunks, "split": [content.side_by_side(h) for h in hunks],
        })
    return out


@router.get("/s/{source}/commit")
def commit(
    source: str, request: Request, web: Web, me: Visitor, rev: Rev = None,
    view: Annotated[str, Query(pattern="^(unified|split)$")] = "unified",
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    repo = src.stored.repository
    cid = src.view(_rev(src, rev)).commit_id
    cs = repo.changeset(cid)
    parent: ObjectId | None = cs.parents[0] if cs.parents else None
    diffs = repo.diff(parent, cid)
    return web.renderer.page(request, "commit.html", {
        "source": source, "rev": rev or cid, "cs": cs, "view": view,
        "files": shown_diffs(diffs), "more": max(0, len(diffs) - MAX_FILES_SHOWN),
        "body": cs.message.split("\n", 1)[1].strip() if "\n" in cs.message else "",
    })


@router.get("/s/{source}/log")
def log_page(
    source: str, request: Request, web: Web, me: Visitor, rev: Rev = None, path: PathQ = "",
    skip: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    src = source_for(web.state, me, source, Action.READ)
    rev = _rev(src, rev)
    path = _path(path)
    cid = src.view(rev).commit_id
    commits = src.stored.repository.log(cid, path or None, limit=LOG_PAGE + 1, skip=skip)
    return web.renderer.page(request, "log.html", {
        "source": source, "rev": rev, "path": path, "commits": commits[:LOG_PAGE],
        "next_skip": skip + LOG_PAGE if len(commits) > LOG_PAGE else None,
        "prev_skip": max(0, skip - LOG_PAGE) if skip else None,
    })
