"""``revisor.vcs``: the repository abstraction; the only package that imports pygit2 or runs git.

Everything above this layer reads and writes git through :class:`Repository` and gets typed values
back (``revisor.vcs.types``).
"""

from revisor.vcs.builder import ChangeBuilder
from revisor.vcs.commits import commits_to_replay, create_commit
from revisor.vcs.names import check_ref_name, parse_revision, validate_dir, validate_path
from revisor.vcs.repository import Repository
from revisor.vcs.types import (
    EMPTY_TREE,
    Change,
    ChangeKind,
    Changeset,
    EntryKind,
    FileDiff,
    FileMode,
    MergeResult,
    ObjectId,
    RefUpdate,
    Signature,
    TreeEntry,
    VersionedFile,
)

__all__ = [
    "EMPTY_TREE",
    "Change",
    "ChangeBuilder",
    "ChangeKind",
    "Changeset",
    "EntryKind",
    "FileDiff",
    "FileMode",
    "MergeResult",
    "ObjectId",
    "RefUpdate",
    "Repository",
    "Signature",
    "TreeEntry",
    "VersionedFile",
    "check_ref_name",
    "commits_to_replay",
    "create_commit",
    "parse_revision",
    "validate_dir",
    "validate_path",
]
