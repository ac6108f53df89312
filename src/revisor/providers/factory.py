"""Who hosts a source's proposals, chosen by its ``provider.type``.

``make_provider`` is the one place that turns a source's configuration into a :class:`Provider`.
The builtin provider keeps proposals in Revisor's database; the external SCMs (GitHub, GitLab,
Gitea, Gerrit) live in their own modules, imported only when a source uses them.
"""

from __future__ import annotations

from revisor.db.audit import AuditLog
from revisor.db.database import Database
from revisor.errors import ConfigError
from revisor.providers.base import Provider
from revisor.providers.builtin import BuiltinProvider
from revisor.store.store import StoreSource
from revisor.vcs import Signature

__all__ = ["make_provider"]


def make_provider(
    source: StoreSource, db: Database, audit: AuditLog, committer: Signature
) -> Provider:
    """The provider configured for ``source``."""
    kind = source.config.provider.type
    if kind == "builtin":
        return BuiltinProvider(source, db, audit, committer)
    if kind == "github":
        from revisor.providers.github import make_github_provider

        return make_github_provider(source, db, audit, committer)
    if kind == "gitlab":
        from revisor.providers.gitlab import make_gitlab_provider

        return make_gitlab_provider(source, db, audit, committer)
    if kind == "gitea":
        from revisor.providers.gitea import make_gitea_provider

        return make_gitea_provider(source, db, audit, committer)
    if kind == "gerrit":
        from revisor.providers.gerrit import make_gerrit_provider

        return make_gerrit_provider(source, db, audit, committer)
    raise ConfigError(
        f"unknown provider type {kind!r}",
        field=f"sources.{source.name}.provider.type",
        hint="one of: builtin, github, gitlab, gitea, gerrit",
    )
