"""A reader for git's commit-graph files and their changed-path Bloom filters.

Why this module exists: libgit2 does not read the commit-graph, so a history walk through pygit2
inflates every commit it passes and, to decide whether a path changed, reads and compares trees
for every commit. git itself answers ``git log -- <path>`` from ``objects/info/commit-graph``:
parents, committer date and root tree of every commit in fixed-size records, and for each commit
a Bloom filter of the paths that changed against its first parent, which proves most commits did
*not* touch a path without reading a single tree. Revisor's store maintenance writes these files
(``git commit-graph write --reachable --changed-paths``) on every mirror; this module lets
:mod:`revisor.vcs.history` use them too, with the same exactness as without them.

The format is git's (``Documentation/technical/commit-graph-format.txt``): one file
``objects/info/commit-graph``, or a chain ``objects/info/commit-graphs/commit-graph-chain`` naming
``graph-<hash>.graph`` layers from the base up. Positions are global across a chain (a layer's
commits come after all the commits of the layers below it). Files are memory-mapped and decoded on
demand; nothing is parsed up front beyond the header, the chunk table and a checksum.

Trust rules, because a wrong graph would give wrong answers silently:

* A file is used only if everything checks: signature, version 1, SHA-1 ids, the chunk table and
  every chunk's size, the trailing SHA-1 checksum of the whole file, and for a chain each layer's
  name, base count and base list. Anything unexpected and :func:`load` returns None (the caller
  walks with pygit2 as before). A layer of a chain that fails leaves the layers below it in use,
  as git does.
* Inconsistencies found later (a parent position out of range, a broken octopus edge list) raise
  :class:`GraphError`; the caller drops the graph and walks again without it.
* Commits not in the graph (newer than it) are simply not found: :meth:`CommitGraph.position`
  returns None and the caller reads them from the object database.
* A Bloom filter answers "maybe" whenever it cannot prove anything: no filter chunk in the layer,
  an empty or out-of-range filter, a filter of a commit with more than 512 changes (git stores one
  byte of all ones), unknown hash versions.

Bloom filter version 1 hashes paths with murmur3 as git 2.39 implements it, which reads the path
through a plain ``char``: on platforms where ``char`` is signed (x86) bytes >= 0x80 are
sign-extended, elsewhere they are not, and later git versions changed the block loop again. For a
path with such bytes a version-1 filter is therefore tested with every variant git has used, and
the path counts as "maybe changed" if any variant says so: never a false "not changed", whoever
wrote the file. Version 2 (git >= 2.45) is plain murmur3.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import pygit2

__all__ = [
    "BloomFilter",
    "BloomSettings",
    "CommitGraph",
    "GraphError",
    "PathKey",
    "build_filter",
    "cached",
    "clear_cache",
    "for_repository",
    "load",
    "murmur3",
]

_SIGNATURE = b"CGPH"
_HASH_LEN = 20  # SHA-1 (hash version 1)
_PARENT_NONE = 0x70000000
_EXTRA_EDGES = 0x80000000
_LAST_EDGE = 0x80000000
_EDGE_MASK = 0x7FFFFFFF
_CHUNK_ENTRY = 12
_HEADER = 8
_FANOUT_SIZE = 256 * 4
_BLOOM_HEADER = 12
_MAX_HASHES = 32  # git writes 7; anything far above is not a file git wrote
_U32 = 0xFFFFFFFF
_SEED0 = 0x293AE76F
_SEED1 = 0x7E646E2C
# Per commit: root tree id, first and second parent positions, generation and date.
_CDAT = struct.Struct(f">{_HASH_LEN}sIIII")
_BE32 = struct.Struct(">I")
_TWO32 = struct.Struct(">II")


class GraphError(Exception):
    """The graph contradicts itself: stop trusting it (and walk without it)."""


# -- murmur3 and Bloom keys -----------------------------------------------------------------------
def _signed(byte: int) -> int:
    """A byte read through a signed ``char`` and converted to ``uint32_t``."""
    return byte | 0xFFFFFF00 if byte & 0x80 else byte


def murmur3(
    seed: int, data: bytes, *, signed_blocks: bool = False, signed_tail: bool = False
) -> int:
    """32-bit murmur3 of ``data``, as git's ``bloom.c`` computes it.

    With both flags False this is the reference murmur3 (git's Bloom version 2, and version 1 on
    platforms where ``char`` is unsigned). ``signed_blocks`` and ``signed_tail`` sign-extend bytes
    >= 0x80 in the 4-byte blocks and in the 1-3 trailing bytes, as git 2.39 does on x86 (both) and
    later git versions do for version 1 (tail only). ASCII data hashes the same in every variant.
    """
    h = seed & _U32
    blocks = len(data) // 4
    for i in range(blocks):
        b0, b1, b2, b3 = data[4 * i : 4 * i + 4]
        if signed_blocks:
            k = (_signed(b0) | _signed(b1) << 8 | _signed(b2) << 16 | _signed(b3) << 24) & _U32
        else:
            k = b0 | b1 << 8 | b2 << 16 | b3 << 24
        k = (k * 0xCC9E2D51) & _U32
        k = ((k << 15) | (k >> 17)) & _U32
        k = (k * 0x1B873593) & _U32
        h ^= k
        h = ((h << 13) | (h >> 19)) & _U32
        h = (h * 5 + 0xE6546B64) & _U32
    tail = data[4 * blocks :]
    if tail:
        conv = _signed if signed_tail else int
        k1 = 0
        if len(tail) == 3:
            k1 ^= (conv(tail[2]) << 16) & _U32
        if len(tail) >= 2:
            k1 ^= (conv(tail[1]) << 8) & _U32
        k1 ^= conv(tail[0]) & _U32
        k1 = (k1 * 0xCC9E2D51) & _U32
        k1 = ((k1 << 15) | (k1 >> 17)) & _U32
        k1 = (k1 * 0x1B873593) & _U32
        h ^= k1
    h ^= len(data) & _U32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _U32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _U32
    h ^= h >> 16
    return h


# (signed_blocks, signed_tail) of every way git has hashed paths for each Bloom hash version.
_VARIANTS: dict[int, tuple[tuple[bool, bool], ...]] = {
    1: ((True, True), (False, False), (False, True)),
    2: ((False, False),),
}


class BloomSettings(NamedTuple):
    """The header of a BDAT chunk: hash version, hashes per path, bits per path."""

    hash_version: int
    num_hashes: int
    bits_per_entry: int


class BloomFilter(NamedTuple):
    """One commit's changed-path filter: its bytes as an integer (bit ``i`` of the integer is bit
    ``i % 8`` of byte ``i // 8``, git's layout), its size in bits, and how it was built."""

    bits: int
    size: int
    settings: BloomSettings


def _key_hashes(component: bytes, variant: tuple[bool, bool]) -> tuple[int, int]:
    signed_blocks, signed_tail = variant
    return (
        murmur3(_SEED0, component, signed_blocks=signed_blocks, signed_tail=signed_tail),
        murmur3(_SEED1, component, signed_blocks=signed_blocks, signed_tail=signed_tail),
    )


def _mask(hashes: Iterable[tuple[int, int]], num_hashes: int, size: int) -> int:
    """The filter bits the keys ``hashes`` set in a filter of ``size`` bits (git's double hashing:
    the i-th bit of a key is ``(h0 + i * h1) mod 2**32 mod size``)."""
    mask = 0
    for h0, h1 in hashes:
        for i in range(num_hashes):
            mask |= 1 << (((h0 + i * h1) & _U32) % size)
    return mask


class PathKey:
    """The Bloom keys of one path and of each of its leading directories.

    git adds every changed path *and its leading directories* to a commit's filter, so a path can
    have changed only if the filter holds all of them: testing them all at once (one mask per
    filter size) rejects more commits than the path alone, at the same cost.
    """

    __slots__ = ("_hashes", "_masks", "path", "variants")

    def __init__(self, path: str | bytes) -> None:
        raw = path.encode("utf-8", "surrogateescape") if isinstance(path, str) else path
        if not raw or raw.startswith(b"/") or raw.endswith(b"/"):
            raise ValueError(f"not a repository path: {raw!r}")
        self.path = raw
        parts = raw.split(b"/")
        components = [b"/".join(parts[: i + 1]) for i in range(len(parts))]
        # Per hash version, per variant of that version: the (h0, h1) of every component.
        self._hashes: dict[int, list[list[tuple[int, int]]]] = {}
        for version, variants in _VARIANTS.items():
            distinct = variants if any(b >= 0x80 for b in raw) else variants[:1]
            self._hashes[version] = [[_key_hashes(c, v) for c in components] for v in distinct]
        # How many hashing variants a version-1 filter must be tested with (1 for ASCII paths).
        self.variants = len(self._hashes[1])
        self._masks: dict[tuple[BloomSettings, int], tuple[int, ...] | None] = {}

    def masks(self, settings: BloomSettings, size: int) -> tuple[int, ...] | None:
        """One mask per hashing variant for filters of ``size`` bits; None for unknown versions."""
        key = (settings, size)
        try:
            return self._masks[key]
        except KeyError:
            pass
        per_variant = self._hashes.get(settings.hash_version)
        found = (
            None
            if per_variant is None
            else tuple(_mask(h, settings.num_hashes, size) for h in per_variant)
        )
        self._masks[key] = found
        return found

    def maybe_in(self, bloom: BloomFilter) -> bool:
        """False only if ``bloom`` proves the path is not among the paths it holds."""
        masks = self.masks(bloom.settings, bloom.size)
        if masks is None:
            return True
        bits = bloom.bits
        return any(bits & m == m for m in masks)


def build_filter(
    paths: Iterable[str | bytes],
    settings: BloomSettings,
    *,
    variant: tuple[bool, bool] | None = None,
) -> bytes:
    """The filter bytes git writes for a commit whose changed paths (leading directories
    included) are ``paths``: for tests, to check the hashing against git's own files."""
    unique = {p.encode("utf-8", "surrogateescape") if isinstance(p, str) else p for p in paths}
    length = (len(unique) * settings.bits_per_entry + 7) // 8 or 1
    chosen = variant if variant is not None else _VARIANTS[settings.hash_version][0]
    mask = _mask((_key_hashes(p, chosen) for p in unique), settings.num_hashes, length * 8)
    return mask.to_bytes(length, "little")


# -- one file -------------------------------------------------------------------------------------
@dataclass
class _Layer:
    """One commit-graph file: the single file, or one layer of a chain."""

    path: Path
    data: mmap.mmap
    count: int
    base: int  # commits in the layers below
    bases: int  # number of base layers the header announces
    base_list: bytes
    checksum: bytes
    oidf: int
    oidl: int
    cdat: int
    edge: int
    edges: int
    bidx: int | None = None
    bdat: int = 0
    bdat_size: int = 0
    settings: BloomSettings | None = None


def _open_layer(path: Path) -> _Layer | None:
    """Map and validate one file; None if it is missing or anything about it is unexpected."""
    try:
        with open(path, "rb") as fh:
            if os.fstat(fh.fileno()).st_size == 0:
                return None
            data = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError):
        return None
    layer = _parse_layer(path, data)
    if layer is None:
        data.close()
        return None
    return layer


def _parse_layer(path: Path, data: mmap.mmap) -> _Layer | None:
    size = len(data)
    if size < _HEADER + 4 * _CHUNK_ENTRY + _FANOUT_SIZE + _HASH_LEN:
        return None
    signature, version, hash_version, chunks, bases = struct.unpack_from(">4sBBBB", data, 0)
    if signature != _SIGNATURE or version != 1 or hash_version != 1:
        return None
    table_end = _HEADER + (chunks + 1) * _CHUNK_ENTRY
    end = size - _HASH_LEN
    if table_end > end:
        return None
    entries = [
        struct.unpack_from(">4sQ", data, _HEADER + i * _CHUNK_ENTRY) for i in range(chunks + 1)
    ]
    if entries[-1][0] != b"\0\0\0\0":
        return None
    found: dict[bytes, tuple[int, int]] = {}
    for (cid, start), (_next_id, stop) in pairwise(entries):
        if cid in found or cid == b"\0\0\0\0" or not table_end <= start <= stop <= end:
            return None
        found[cid] = (start, stop - start)
    if hashlib.sha1(data[:end]).digest() != data[end:]:  # noqa: S324 (git's checksum is SHA-1)
        return None
    try:
        oidf, oidf_size = found[b"OIDF"]
        oidl, oidl_size = found[b"OIDL"]
        cdat, cdat_size = found[b"CDAT"]
    except KeyError:
        return None
    if oidf_size != _FANOUT_SIZE:
        return None
    fanout = struct.unpack_from(">256I", data, oidf)
    if any(a > b for a, b in pairwise(fanout)):
        return None
    count = fanout[-1]
    if oidl_size != count * _HASH_LEN or cdat_size != count * _CDAT.size:
        return None
    edge, edge_size = found.get(b"EDGE", (0, 0))
    if edge_size % 4:
        return None
    base_list = b""
    if bases:
        base_at, base_size = found.get(b"BASE", (0, -1))
        if base_size != bases * _HASH_LEN:
            return None
        base_list = bytes(data[base_at : base_at + base_size])
    layer = _Layer(
        path=path,
        data=data,
        count=count,
        base=0,
        bases=bases,
        base_list=base_list,
        checksum=bytes(data[end:]),
        oidf=oidf,
        oidl=oidl,
        cdat=cdat,
        edge=edge,
        edges=edge_size // 4,
    )
    _attach_bloom(layer, found)
    return layer


def _attach_bloom(layer: _Layer, found: dict[bytes, tuple[int, int]]) -> None:
    """Use the layer's Bloom chunks if both are present and sane (else: no filters, "maybe")."""
    if b"BIDX" not in found or b"BDAT" not in found:
        return
    bidx, bidx_size = found[b"BIDX"]
    bdat, bdat_size = found[b"BDAT"]
    if bidx_size != layer.count * 4 or bdat_size < _BLOOM_HEADER:
        return
    version, hashes, bits = struct.unpack_from(">III", layer.data, bdat)
    if version not in _VARIANTS or not 0 < hashes <= _MAX_HASHES or bits == 0:
        return
    layer.bidx, layer.bdat, layer.bdat_size = bidx, bdat, bdat_size
    layer.settings = BloomSettings(version, hashes, bits)


# -- the graph ------------------------------------------------------------------------------------
@dataclass
class CommitGraph:
    """The commits of one commit-graph (single file or chain), by global position.

    Positions run from 0 to :attr:`num_commits` - 1, base layer first. Use :meth:`position` to find
    a commit; a commit that is not found must be read from the object database.
    """

    layers: list[_Layer]
    broken: bool = False  # set by a caller that found it inconsistent: not used again
    num_commits: int = field(init=False)

    def __post_init__(self) -> None:
        base = 0
        for layer in self.layers:
            layer.base = base
            base += layer.count
        self.num_commits = base
        self._single = self.layers[0] if len(self.layers) == 1 else None

    def _locate(self, pos: int) -> tuple[_Layer, int]:
        if self._single is not None and 0 <= pos < self._single.count:
            return self._single, pos
        for layer in reversed(self.layers):
            if layer.base <= pos < layer.base + layer.count:
                return layer, pos - layer.base
        raise GraphError(f"commit position {pos} is outside the graph")

    # -- lookups ------------------------------------------------------------------------------
    def position(self, oid: bytes) -> int | None:
        """The position of commit ``oid`` (20 raw bytes), or None if the graph does not hold it."""
        if len(oid) != _HASH_LEN:
            return None
        first = oid[0]
        for layer in reversed(self.layers):
            data = layer.data
            lo: int = _BE32.unpack_from(data, layer.oidf + 4 * (first - 1))[0] if first else 0
            hi: int = _BE32.unpack_from(data, layer.oidf + 4 * first)[0]
            base = layer.oidl
            while lo < hi:
                mid = (lo + hi) // 2
                at = base + mid * _HASH_LEN
                here = data[at : at + _HASH_LEN]
                if here < oid:
                    lo = mid + 1
                elif here > oid:
                    hi = mid
                else:
                    return layer.base + mid
        return None

    def oid(self, pos: int) -> bytes:
        """The raw id of the commit at ``pos``."""
        layer, local = self._locate(pos)
        at = layer.oidl + local * _HASH_LEN
        return bytes(layer.data[at : at + _HASH_LEN])

    def commit(self, pos: int) -> tuple[bytes, tuple[int, ...], int]:
        """(root tree id, parent positions in order, committer date) of the commit at ``pos``."""
        layer, local = self._locate(pos)
        tree, p1, p2, high, low = _CDAT.unpack_from(layer.data, layer.cdat + local * _CDAT.size)
        date = ((high & 0x3) << 32) | low
        limit = layer.base + layer.count  # a layer's commits only have parents at or below it
        if p1 == _PARENT_NONE:
            return tree, (), date
        if p1 >= limit:
            raise GraphError(f"{layer.path}: parent position {p1} out of range")
        if p2 == _PARENT_NONE:
            return tree, (p1,), date
        if not p2 & _EXTRA_EDGES:
            if p2 >= limit:
                raise GraphError(f"{layer.path}: parent position {p2} out of range")
            return tree, (p1, p2), date
        parents = [p1]
        index = p2 & _EDGE_MASK
        while True:
            if index >= layer.edges:
                raise GraphError(f"{layer.path}: octopus edge {index} out of range")
            value = _BE32.unpack_from(layer.data, layer.edge + 4 * index)[0]
            parent = value & _EDGE_MASK
            if parent >= limit:
                raise GraphError(f"{layer.path}: parent position {parent} out of range")
            parents.append(parent)
            if value & _LAST_EDGE:
                return tree, tuple(parents), date
            index += 1

    def parents(self, pos: int) -> tuple[int, ...]:
        return self.commit(pos)[1]

    def commit_time(self, pos: int) -> int:
        return self.commit(pos)[2]

    def tree(self, pos: int) -> bytes:
        return self.commit(pos)[0]

    # -- Bloom filters ------------------------------------------------------------------------
    def bloom_filter(self, pos: int) -> BloomFilter | None:
        """The changed-path filter of the commit at ``pos`` (against its first parent, or the
        empty tree for a root commit), or None when there is none to trust."""
        single = self._single
        if single is not None and 0 <= pos < single.count:
            layer, local = single, pos
        else:
            layer, local = self._locate(pos)
        if layer.bidx is None or layer.settings is None:
            return None
        data = layer.data
        end = _BE32.unpack_from(data, layer.bidx + 4 * local)[0]
        start = _BE32.unpack_from(data, layer.bidx + 4 * (local - 1))[0] if local else 0
        if not start < end <= layer.bdat_size - _BLOOM_HEADER:
            return None  # empty (not computed), decreasing or out of range: nothing proven
        at = layer.bdat + _BLOOM_HEADER
        bits = int.from_bytes(data[at + start : at + end], "little")
        return BloomFilter(bits, (end - start) * 8, layer.settings)

    def follow_unchanged(
        self,
        pos: int,
        masks: Mapping[tuple[BloomSettings, int], Sequence[int]],
        stop: Container[int] = (),
    ) -> int:
        """Follow first parents from ``pos`` as long as each commit's filter proves a set of
        paths unchanged against its first parent; return the first commit where it does not (no
        filter, a root commit, or a filter that may hold a path), or the last one before a
        commit in ``stop``: ``pos`` itself, at worst.

        ``masks[settings, size]`` gives, for filters of ``size`` bits, one mask per path and
        hashing variant (:meth:`PathKey.masks`): a filter that holds every bit of one of them may
        hold that path. This is the hot loop of a history walk, hence decoded in place.
        """
        single = self._single
        cdat_width = _CDAT.size
        while True:
            if single is not None and 0 <= pos < single.count:
                layer, local = single, pos
            else:
                layer, local = self._locate(pos)
            bidx, settings = layer.bidx, layer.settings
            if bidx is None or settings is None:
                return pos
            data = layer.data
            first = _BE32.unpack_from(data, layer.cdat + local * cdat_width + _HASH_LEN)[0]
            if first == _PARENT_NONE:
                return pos
            if first >= layer.base + layer.count:
                raise GraphError(f"{layer.path}: parent position {first} out of range")
            if local:
                start, end = _TWO32.unpack_from(data, bidx + 4 * (local - 1))
            else:
                start, end = 0, _BE32.unpack_from(data, bidx)[0]
            if not start < end <= layer.bdat_size - _BLOOM_HEADER:
                return pos
            at = layer.bdat + _BLOOM_HEADER
            bits = int.from_bytes(data[at + start : at + end], "little")
            for mask in masks[settings, (end - start) * 8]:
                if bits & mask == mask:
                    return pos
            if first in stop:
                return pos
            pos = first

    def maybe_changed(self, commit: int | bytes, path: str | bytes | PathKey) -> bool:
        """False only when the Bloom filter proves ``path`` (a file or directory, no trailing
        slash) is the same in ``commit`` (a position or a raw id) and in its first parent."""
        pos = commit if isinstance(commit, int) else self.position(commit)
        if pos is None:
            return True
        try:
            bloom = self.bloom_filter(pos)
        except GraphError:
            return True
        if bloom is None:
            return True
        key = path if isinstance(path, PathKey) else PathKey(path)
        return key.maybe_in(bloom)

    def close(self) -> None:
        for layer in self.layers:
            with contextlib.suppress(BufferError, ValueError):
                layer.data.close()


# -- loading and caching --------------------------------------------------------------------------
def _load_single(info: Path) -> CommitGraph | None:
    layer = _open_layer(info / "commit-graph")
    if layer is None:
        return None
    if layer.bases:  # a single file cannot have a base
        layer.data.close()
        return None
    return CommitGraph([layer])


def _load_chain(info: Path) -> CommitGraph | None:
    folder = info / "commit-graphs"
    try:
        lines = (folder / "commit-graph-chain").read_text("ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    layers: list[_Layer] = []
    for index, name in enumerate(lines):
        layer = None
        if len(name) == 2 * _HASH_LEN and all(c in "0123456789abcdef" for c in name):
            layer = _open_layer(folder / f"graph-{name}.graph")
        ok = (
            layer is not None
            and layer.checksum.hex() == name
            and layer.bases == index
            and layer.base_list == b"".join(x.checksum for x in layers)
        )
        if not ok:
            if layer is not None:
                layer.data.close()
            break  # git too uses the layers below a bad one
        assert layer is not None
        layers.append(layer)
    return CommitGraph(layers) if layers else None


def load(objects_dir: str | os.PathLike[str]) -> CommitGraph | None:
    """The commit-graph of an object directory, read now (uncached); None if there is no usable
    one. The single file wins over a chain, as in git."""
    info = Path(objects_dir) / "info"
    graph = _load_single(info)
    if graph is None:
        graph = _load_chain(info)
    return graph


_CACHE_SIZE = 64
_cache: OrderedDict[str, CommitGraph | None] = OrderedDict()
_signatures: dict[str, tuple[object, ...]] = {}
_lock = threading.Lock()


def _identity(path: Path, *, whole: bool) -> tuple[object, ...] | None:
    """What tells one version of a file from another: its inode, size and times, and its content
    (``whole``) or its trailing checksum. Cheap: a stat and one small read."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            if whole:
                content = fh.read(1 << 16)
            else:
                content = os.pread(fh.fileno(), _HASH_LEN, max(st.st_size - _HASH_LEN, 0))
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, content)


def _signature(objects_dir: Path) -> tuple[object, ...]:
    info = objects_dir / "info"
    return (
        _identity(info / "commit-graph", whole=False),
        _identity(info / "commit-graphs" / "commit-graph-chain", whole=True),
    )


def cached(objects_dir: str | os.PathLike[str]) -> CommitGraph | None:
    """:func:`load`, kept across calls and reloaded when the files change: git replaces the single
    file or the chain file by renaming a new one over it (new inode, times and checksum), and a
    chain's layers are named after their content, which the chain file lists."""
    key = os.fspath(objects_dir)
    signature = _signature(Path(key))
    with _lock:
        if key in _cache and _signatures.get(key) == signature:
            _cache.move_to_end(key)
            graph = _cache[key]
            return None if graph is None or graph.broken else graph
    graph = load(key) if any(s is not None for s in signature) else None
    with _lock:
        _cache[key] = graph
        _signatures[key] = signature
        _cache.move_to_end(key)
        while len(_cache) > _CACHE_SIZE:
            old, _ = _cache.popitem(last=False)
            _signatures.pop(old, None)
    return graph


def clear_cache() -> None:
    """Forget every loaded graph (the next call reads the files again)."""
    with _lock:
        _cache.clear()
        _signatures.clear()


def _objects_dir(git_dir: Path) -> Path:
    try:
        common = (git_dir / "commondir").read_text().strip()
    except OSError:
        return git_dir / "objects"
    return (git_dir / common).resolve() / "objects" if common else git_dir / "objects"


def for_repository(pg: pygit2.Repository) -> CommitGraph | None:
    """The commit-graph a pygit2 repository's walks may use, or None.

    None also when the repository is shallow or has grafts: git ignores its commit-graph then,
    because the parents it records are not the parents the repository shows.
    """
    git_dir = Path(pg.path)
    if pg.is_shallow or (git_dir / "shallow").exists():
        return None
    objects = _objects_dir(git_dir)
    if (git_dir / "info" / "grafts").exists() or (objects.parent / "info" / "grafts").exists():
        return None
    return cached(objects)
