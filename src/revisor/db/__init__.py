"""``revisor.db``: the SQL metadata store — proposals, candidates and workspaces, the transaction
journal, the audit log.

Git holds content; SQL holds metadata (DESIGN principle 7). SQLite under ``data_dir`` by default,
PostgreSQL when scaled out, through SQLAlchemy; the schema is migrated by Alembic from inside the
package (:meth:`Database.migrate`). Callers get frozen dataclasses, never ORM rows.
"""

from revisor.db import auth as _auth  # noqa: F401 - the users and tokens join Base.metadata
from revisor.db import backups as _backups  # noqa: F401 - the backup tables join Base.metadata
from revisor.db import jobs as _jobs  # noqa: F401 - the jobs' tables join Base.metadata
from revisor.db import lastcommits as _lastcommits  # noqa: F401 - its table joins Base.metadata
from revisor.db.audit import AuditEntry, AuditLog, actor_of
from revisor.db.candidates import CandidateStore
from revisor.db.database import Database
from revisor.db.journal import Began, Journal, JournalEntry, new_tx_id
from revisor.db.models import TxState
from revisor.db.proposals import Opened, ProposalStore

__all__ = [
    "AuditEntry",
    "AuditLog",
    "Began",
    "CandidateStore",
    "Database",
    "Journal",
    "JournalEntry",
    "Opened",
    "ProposalStore",
    "TxState",
    "actor_of",
    "new_tx_id",
]
