"""API v1 routes: reading a source — sources, refs, commits, log, tree, blob, diff, archive.

Why this module exists: the read half of issue 8's API, kept thin: each route resolves the
revision once (with the source's freshness rules), reads through ``revisor.vcs.Repository`` and
renders a model from ``api.schemas``. Revisions and paths travel as query parameters and are
validated by the vcs layer before git sees them (invalid → 400). Blobs and archives stream.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Header, Path, Query
from fastapi.responses import Response, StreamingResponse

from revisor.api.deps import (
    Caller,
    Cursor,
    Limit,
    State,
    decode_cursor,
    encode_cursor,
    none_match,
    page_limit,
    quoted_etag,
    source_for,
)
from revisor.api.problems import problem
from revisor.api.schemas import (
    CommitOut,
    DiffOut,
    FileDiffOut,
    FreshnessOut,
    Page,
    RefChangeOut,
    RefOut,
    RefreshOut,
    SourceOut,
    TreeEntryOut,
    TreeOut,
    problems,
)
from revisor.api.streams import (
    CHUNK,
    ArchiveFormat,
    Unsatisfiable,
    archive_stream,
    parse_range,
    slice_stream,
)
from revisor.core.lastcommits import cache_for
from revisor.errors import InvalidInput, NotAllowed
from revisor.services.auth import Action
from revisor.services.sources import Source
from revisor.vcs import ObjectId, validate_dir, validate_path

__all__ = ["router"]

router = APIRouter(tags=["browse"])

SourceName = Annotated[str, Path(description="A configured source's name.", max_length=200)]
Rev = Annotated[
    str | None,
    Query(max_length=1024, description="A branch, tag, commit id or HEAD, with ~N / ^N "
          "(default: the source's target branch)."),
]
RepoPath = Annotated[
    str, Query(max_length=4096, description="A path inside the repository ('' is the root).")
]

_READ_ERRORS = problems(400, 404, 503)
#: blobs up to this size are answered from one read; bigger ones stream in CHUNK pieces
INLINE_BYTES = 1 << 20


def _resolve(src: Source, rev: str | None) -> ObjectId:
    """The commit ``rev`` names now (a source that is due is fetched first)."""
    return src.stored.resolve(rev or src.stored.target_branch, fresh=True)


def _source_out(src: Source, *, with_freshness: bool) -> SourceOut:
    stored = src.stored
    cfg = stored.config
    branch: str | None = cfg.branch
    readable = stored.mirror is None or stored.mirror.exists
    if branch is None and readable:
        branch = stored.target_branch
    return SourceOut(
        name=src.name,
        type=cfg.type,
        location=stored.display_location,
        target_branch=branch,
        provider=cfg.provider.type,
        allow_direct=cfg.allow_direct,
        freshness=FreshnessOut.of(stored.freshness()) if with_freshness else None,
    )


# -- sources ----------------------------------------------------------------------------------
@router.get("/sources", response_model=Page[SourceOut], responses=problems(400))
def list_sources(state: State, caller: Caller, limit: Limit = None,
                 cursor: Cursor = None) -> Page[SourceOut]:
    """The sources this caller may read, in configuration order."""
    size = page_limit(state, limit)
    start = int(decode_cursor(cursor, "sources").get("i", 0)) if cursor else 0
    names = list(state.rv.config.sources)
    visible = []
    for name in names:
        try:
            state.auth.authorize(caller, Action.READ, name)
        except NotAllowed:
            continue
        visible.append(name)
    chosen = visible[start : start + size]
    items = [_source_out(state.source(n), with_freshness=False) for n in chosen]
    more = start + size < len(visible)
    return Page[SourceOut](
        items=items, next_cursor=encode_cursor("sources", i=start + size) if more else None
    )


@router.get("/sources/{source}", response_model=SourceOut, responses=problems(404))
def get_source(state: State, caller: Caller, source: SourceName) -> SourceOut:
    """One source: where it comes from, its target branch, its provider and its freshness."""
    return _source_out(source_for(state, caller, source), with_freshness=True)


@router.post("/sources/{source}/refresh", response_model=RefreshOut,
             responses=problems(404, 503))
def refresh_source(state: State, caller: Caller, source: SourceName) -> RefreshOut:
    """Fetch the source now (503 with Retry-After when its remote is unavailable)."""
    src = source_for(state, caller, source, Action.REFRESH)
    result = src.stored.refresh()
    if result is None:
        return RefreshOut(fetched=False)
    return RefreshOut(
        fetched=result.fetched,
        seconds=round(result.seconds, 3),
        changes=[RefChangeOut(ref=c.ref, old=c.old, new=c.new) for c in result.changes],
    )


# -- refs and commits -------------------------------------------------------------------------
@router.get("/sources/{source}/refs", response_model=Page[RefOut], responses=_READ_ERRORS)
def list_refs(
    state: State,
    caller: Caller,
    source: SourceName,
    prefix: Annotated[str, Query(max_length=1024, description="e.g. refs/heads/")] = "refs/",
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[RefOut]:
    """Refs by name, under ``prefix`` (``heads/`` means ``refs/heads/``)."""
    src = source_for(state, caller, source)
    size = page_limit(state, limit)
    if not prefix.startswith("refs/"):
        prefix = "refs/" + prefix
    if "\x00" in prefix or ".." in prefix or any(c in prefix for c in " ~^:?*[\\"):
        raise InvalidInput(f"invalid ref prefix {prefix!r}")
    after = str(decode_cursor(cursor, "refs").get("after", "")) if cursor else ""
    refs = src.stored.repository.refs(prefix)
    names = sorted(n for n in refs if n > after)
    chosen = names[:size]
    more = len(names) > size
    return Page[RefOut](
        items=[RefOut(name=n, target=refs[n]) for n in chosen],
        next_cursor=encode_cursor("refs", after=chosen[-1]) if more and chosen else None,
    )


@router.get("/sources/{source}/commits/{rev:path}", response_model=CommitOut,
            responses=_READ_ERRORS)
def get_commit(state: State, caller: Caller, source: SourceName,
               rev: Annotated[str, Path(max_length=1024)]) -> CommitOut:
    """One commit and its changes against its first parent (``rev`` may contain slashes)."""
    src = source_for(state, caller, source)
    commit = _resolve(src, rev)
    return CommitOut.of(src.stored.repository.changeset(commit), with_changes=True)


@router.get("/sources/{source}/log", response_model=Page[CommitOut], responses=_READ_ERRORS)
def log(
    state: State,
    caller: Caller,
    source: SourceName,
    rev: Rev = None,
    path: RepoPath = "",
    limit: Limit = None,
    cursor: Cursor = None,
) -> Page[CommitOut]:
    """Commits in ``git log`` order (touching ``path`` if given). The cursor pins the start
    commit, so later pages continue the same history even if the branch moves."""
    src = source_for(state, caller, source)
    size = page_limit(state, limit)
    validate_dir(path)
    if cursor:
        values = decode_cursor(cursor, "log")
        start, skip = str(values.get("c", "")), values.get("s", 0)
        if not isinstance(skip, int) or skip < 0 or len(start) != 40:
            raise InvalidInput("the cursor is not valid")
    else:
        start, skip = _resolve(src, rev), 0
    commits = src.stored.repository.log(start, path or None, limit=size + 1, skip=skip)
    more = len(commits) > size
    return Page[CommitOut](
        items=[CommitOut.of(c) for c in commits[:size]],
        next_cursor=encode_cursor("log", c=start, s=skip + size) if more else None,
    )


# -- trees and blobs --------------------------------------------------------------------------
@router.get("/sources/{source}/tree", response_model=TreeOut, responses=_READ_ERRORS)
def tree(
    state: State,
    caller: Caller,
    source: SourceName,
    rev: Rev = None,
    path: RepoPath = "",
    last_commits: Annotated[
        bool, Query(description="Add each entry's last commit (partial within the budget).")
    ] = False,
) -> TreeOut:
    """A directory's entries; with ``last_commits``, the commit that last touched each one.

    The last commits come from a persistent cache; what is not known within the server's budget
    is left out and ``partial`` is true: ask again to get the rest.
    """
    src = source_for(state, caller, source)
    commit = _resolve(src, rev)
    repo = src.stored.repository
    entries = repo.tree(commit, path)
    if not last_commits:
        return TreeOut(commit=commit, path=path,
                       entries=[TreeEntryOut.of(e) for e in entries])
    listing = cache_for(state.rv, src.name).listing(
        commit, path, budget=state.settings.last_commit_budget_s
    )
    return TreeOut(
        commit=commit,
        path=path,
        entries=[TreeEntryOut.of(e, listing.entries.get(e.name)) for e in entries],
        partial=listing.partial,
    )


_BLOB_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/octet-stream": {}}, "description": "The file's bytes"},
    206: {"content": {"application/octet-stream": {}}, "description": "One byte range"},
    304: {"description": "Not modified (If-None-Match)"},
    **problems(400, 404, 416, 503),
}


@router.get("/sources/{source}/blob", response_class=Response, responses=_BLOB_RESPONSES)
def blob(
    state: State,
    caller: Caller,
    source: SourceName,
    path: Annotated[str, Query(max_length=4096, description="The file's path.")],
    rev: Rev = None,
    download: Annotated[bool, Query(description="Ask the browser to save it.")] = False,
    if_none_match: Annotated[str | None, Header(max_length=8192)] = None,
    range_: Annotated[str | None, Header(alias="range", max_length=1024)] = None,
) -> Response:
    """A file's raw bytes, streamed. ``ETag`` is the blob id; ``If-None-Match`` → 304; one
    ``Range: bytes=a-b`` → 206 (unsatisfiable → 416)."""
    src = source_for(state, caller, source)
    validate_path(path)
    commit = _resolve(src, rev)
    f = src.stored.repository.file(commit, path)
    etag = quoted_etag(f.id)
    name = path.rsplit("/", 1)[-1]
    media = mimetypes.guess_type(name)[0] or "application/octet-stream"
    if media.startswith("text/") or media in ("application/json", "application/xml"):
        media += "; charset=utf-8"
    disposition = "attachment" if download else "inline"
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=0, must-revalidate",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Content-Disposition": f"{disposition}; filename*=UTF-8''{quote(name, safe='')}",
        "X-Revisor-Commit": commit,
    }
    if none_match(if_none_match, f.id):
        return Response(status_code=304, headers={k: headers[k] for k in ("ETag",
                                                                           "Cache-Control")})
    try:
        wanted = parse_range(range_, f.size)
    except Unsatisfiable:
        return problem(416, f"the range {range_!r} is outside the file's {f.size} bytes",
                       headers={"Content-Range": f"bytes */{f.size}", "ETag": etag})
    if f.size <= INLINE_BYTES:  # small: one read, no streaming machinery
        data = f.data
        if wanted is None:
            return Response(data, media_type=media, headers=headers)
        headers["Content-Range"] = wanted.content_range
        return Response(data[wanted.start : wanted.end + 1], status_code=206, media_type=media,
                        headers=headers)
    if wanted is None:
        headers["Content-Length"] = str(f.size)
        return StreamingResponse(f.stream(CHUNK), media_type=media, headers=headers)
    headers["Content-Length"] = str(wanted.length)
    headers["Content-Range"] = wanted.content_range
    return StreamingResponse(
        slice_stream(f.stream(CHUNK), wanted), status_code=206, media_type=media, headers=headers
    )


# -- diffs and archives -----------------------------------------------------------------------
@router.get("/sources/{source}/diff", response_model=DiffOut, responses=_READ_ERRORS)
def diff(
    state: State,
    caller: Caller,
    source: SourceName,
    from_: Annotated[
        str | None,
        Query(alias="from", max_length=1024, description="Default: the first parent of 'to'."),
    ] = None,
    to: Rev = None,
    path: Annotated[list[str] | None, Query(max_length=100)] = None,
) -> DiffOut:
    """Per-file changes from ``from`` to ``to`` with unified patches (limited to ``path``s)."""
    src = source_for(state, caller, source)
    paths = [validate_dir(p) for p in path or []]
    new = _resolve(src, to)
    repo = src.stored.repository
    if from_ is not None:
        old: ObjectId | None = _resolve(src, from_)
    else:
        parents = repo.changeset(new).parents
        old = parents[0] if parents else None
    files = repo.diff(old, new, paths or None)
    return DiffOut(from_commit=old, to_commit=new, files=[FileDiffOut.of(d) for d in files])


_ARCHIVE_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {"content": {"application/gzip": {}, "application/zip": {}},
          "description": "The archive, streamed"},
    **problems(400, 404, 503),
}


@router.get("/sources/{source}/archive", response_class=Response,
            responses=_ARCHIVE_RESPONSES)
def archive(
    state: State,
    caller: Caller,
    source: SourceName,
    rev: Rev = None,
    format: Annotated[ArchiveFormat, Query()] = ArchiveFormat.TAR_GZ,
) -> Response:
    """The whole tree of ``rev`` as a tar.gz or zip, streamed (members under ``<source>-<id>/``)."""
    src = source_for(state, caller, source)
    commit = _resolve(src, rev)
    prefix = f"{src.name}-{commit[:12]}"
    filename = f"{prefix}.{format.value}"
    body: Iterator[bytes] = archive_stream(src.stored.repository, commit, format, prefix + "/")
    return StreamingResponse(
        body,
        media_type=format.media_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename, safe='')}",
            "X-Revisor-Commit": commit,
        },
    )
