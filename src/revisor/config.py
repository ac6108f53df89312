"""The configuration: which repositories ("sources") Revisor serves, and where it keeps its data.

``revisor.yaml`` is read once, validated completely, and turned into frozen values; every mistake
is reported with the file and the dotted path of the field (``revisor.yaml: sources.flipt.url:
field required``), and unknown keys are errors, so a misspelt option never silently does nothing.
Secrets are never in the file: it names environment variables, which are read when a credential is
*used* (:meth:`Credentials.resolve`), so a rotated token takes effect on the next fetch.

::

    data_dir: ./var/revisor        # relative to the file's directory; REVISOR_DATA_DIR overrides
    sources:
      flipt:
        type: git
        url: https://example.com/flipt-io/flipt.git
        branch: main               # default: the remote's HEAD
        credentials: {username: bot, password_env: FLIPT_TOKEN}   # or token_env / ssh_key_file
        provider: {type: builtin}
        refresh: 30s               # 500ms, 30s, 5m, 1h, 1d, 1h30m, or a number of seconds
        allow_direct: false
        backup: {url: ..., credentials: {...}}
      notes:
        type: local
        path: /srv/notes           # an existing repository, used in place
    auth: {create_candidates: editor, submit_candidates: admin, editors_manage_own_candidates: true}
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import unquote

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from revisor.errors import ConfigError, InvalidRefName, InvalidRemote, SourceNotFound
from revisor.store.urls import RemoteUrl, Transport, parse_remote, redact
from revisor.vcs.names import check_ref_name

__all__ = [
    "CONFIG_ENV",
    "DATA_DIR_ENV",
    "DEFAULT_DATA_DIR",
    "DEFAULT_REFRESH",
    "TOKEN_USERNAME",
    "AuthConfig",
    "BackupConfig",
    "Config",
    "Credentials",
    "GitSource",
    "JobSchedule",
    "JobsConfig",
    "LocalSource",
    "ProviderConfig",
    "ResolvedCredentials",
    "RetentionConfig",
    "Source",
    "adhoc_source",
    "check_source_name",
    "load_config",
    "parse_duration",
    "sanitize_source_name",
]

CONFIG_ENV = "REVISOR_CONFIG"
DATA_DIR_ENV = "REVISOR_DATA_DIR"
DEFAULT_DATA_DIR = Path("var/revisor")
DEFAULT_REFRESH = timedelta(seconds=30)
# The user name that token-authenticated HTTPS hosts accept; a user name, not a secret.
TOKEN_USERNAME = "x-access-token"  # noqa: S105

_SOURCE_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_SOURCE_TAGS = ("git", "local")


# -- small value types ---------------------------------------------------------------------------
def check_source_name(name: str) -> str:
    """Return ``name`` if it is a valid source name, else raise :class:`ConfigError`."""
    try:
        return _valid_source_name(name)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def sanitize_source_name(text: str) -> str:
    """Turn any text (a directory or repository name) into a valid source name."""
    name = re.sub(r"[^a-z0-9._-]", "-", text.lower())
    name = re.sub(r"-{2,}", "-", name).lstrip("._-")[:63].rstrip("-")
    return name or "source"


def parse_duration(value: object) -> timedelta:
    """``500ms``, ``30s``, ``5m``, ``1h``, ``1d``, combinations (``1h30m``), or seconds."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h, not true/false")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(?:\.\d+)?", text):
            seconds = float(text)
        else:
            parts = _DURATION_PART.findall(text)
            if not text or "".join(n + u for n, u in parts) != text:
                raise ValueError(
                    f"invalid duration {value!r}: use e.g. 500ms, 30s, 5m, 1h, 1d or 1h30m"
                )
            seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError("a duration must be zero or positive")
    if seconds > timedelta.max.total_seconds() / 2:
        raise ValueError("the duration is too long")
    return timedelta(seconds=seconds)


def _valid_source_name(name: str) -> str:
    if not isinstance(name, str) or not _SOURCE_NAME.fullmatch(name):
        raise ValueError(
            f"invalid source name {name!r}: use 1-63 characters a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or a digit"
        )
    return name


def _valid_env_name(name: str) -> str:
    if not _ENV_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return name


def _valid_branch(name: str) -> str:
    if name.startswith("-"):
        raise ValueError("a branch name must not start with '-'")
    if name.startswith("refs/"):
        raise ValueError("give the branch's short name (main), not a ref (refs/heads/main)")
    if name == "HEAD":
        raise ValueError("'HEAD' is not a branch; leave 'branch' out to follow the remote's HEAD")
    try:
        check_ref_name(f"refs/heads/{name}")
    except InvalidRefName as exc:
        raise ValueError(f"invalid branch name {name!r}: {exc.reason}") from None
    return name


SourceName = Annotated[str, AfterValidator(_valid_source_name)]
EnvName = Annotated[str, AfterValidator(_valid_env_name)]
BranchName = Annotated[str, AfterValidator(_valid_branch)]
Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


def _base_dir(info: ValidationInfo) -> Path:
    """The directory relative paths are relative to: the config file's, else the working one."""
    context = info.context
    if isinstance(context, Mapping) and isinstance(context.get("base_dir"), Path):
        base: Path = context["base_dir"]
        return base
    return Path.cwd()


def _absolute(path: Path, info: ValidationInfo) -> Path:
    if "\x00" in str(path):
        raise ValueError("a path must not contain NUL")
    path = path.expanduser()
    # normalised lexically ('a/../b' → 'b'), not resolved: symlinks are the operator's choice
    return Path(os.path.normpath(path if path.is_absolute() else _base_dir(info) / path))


def _check_url(url: str, info: ValidationInfo) -> str:
    remote = parse_remote(url)  # InvalidRemote is a ValueError: pydantic reports it on the field
    if remote.transport is Transport.LOCAL and not url.startswith("/"):
        return str(_absolute(Path(url), info))
    return url


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Iterable[tuple[str | None, Any]]:
        # A URL may carry a password: repr() and str() show it redacted.
        for name, value in super().__repr_args__():
            yield name, (redact(value) if name == "url" and isinstance(value, str) else value)


# -- credentials ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class ResolvedCredentials:
    """Credentials read from the environment, ready for one network operation.

    ``password`` is a :class:`pydantic.SecretStr`: it shows as ``'**********'`` in repr and str;
    ``password.get_secret_value()`` is the only way to the value.
    """

    username: str | None
    password: SecretStr | None
    ssh_key_file: Path | None

    def secrets(self) -> tuple[str, ...]:
        """The secret values, for :func:`revisor.store.urls.redact`'s ``secrets``."""
        return (self.password.get_secret_value(),) if self.password is not None else ()


class Credentials(_Model):
    """How to authenticate to a remote: exactly one of ``password_env``, ``token_env`` (HTTP(S))
    or ``ssh_key_file`` (SSH). Only the *names* of environment variables are configured."""

    username: str | None = None
    password_env: EnvName | None = None
    token_env: EnvName | None = None
    ssh_key_file: Path | None = None

    @field_validator("ssh_key_file")
    @classmethod
    def _key_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else _absolute(value, info)

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and (value == "" or re.search(r"[\x00-\x1f\x7f]", value)):
            raise ValueError("a user name must be non-empty, without control characters")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [
            name
            for name in ("password_env", "token_env", "ssh_key_file")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            found = f" (found {', '.join(given)})" if given else ""
            raise ValueError(f"give exactly one of password_env, token_env or ssh_key_file{found}")
        if self.password_env is not None and self.username is None:
            raise ValueError("'username' is required with 'password_env'")
        if self.ssh_key_file is not None and self.username is not None:
            raise ValueError(
                "'username' does not go with 'ssh_key_file': put the user in the URL "
                "(ssh://user@host/path or user@host:path)"
            )
        return self

    @property
    def kind(self) -> Literal["password", "token", "ssh"]:
        if self.password_env is not None:
            return "password"
        if self.token_env is not None:
            return "token"
        return "ssh"

    def resolve(
        self, env: Mapping[str, str] = os.environ, *, field: str = "credentials"
    ) -> ResolvedCredentials:
        """Read the secret from ``env`` now. ``field`` names these credentials in errors.

        ``token_env``: the password is the token, the user name ``username`` or
        ``x-access-token``. A variable that is unset or empty raises :class:`ConfigError`
        naming it.
        """
        if self.ssh_key_file is not None:
            return ResolvedCredentials(None, None, self.ssh_key_file)
        key = "password_env" if self.password_env is not None else "token_env"
        var = self.password_env if self.password_env is not None else self.token_env
        assert var is not None  # guaranteed by _exactly_one
        value = env.get(var)
        if value is None or value == "":
            state = "is not set" if value is None else "is empty"
            raise ConfigError(
                f"the environment variable {var} {state}",
                field=f"{field}.{key}",
                hint=f"export {var} before starting Revisor",
            )
        username = self.username
        if username is None:
            username = TOKEN_USERNAME
        return ResolvedCredentials(username, SecretStr(value), None)


def _check_credentials_fit(remote: RemoteUrl, credentials: Credentials | None, what: str) -> None:
    if remote.has_password and remote.transport not in (Transport.HTTP, Transport.HTTPS):
        raise ValueError(f"a password in the {what} is only used by http(s) URLs")
    if credentials is None:
        return
    if remote.has_password:
        raise ValueError(
            f"the {what} has a password and 'credentials' are given too: keep only 'credentials'"
        )
    if credentials.kind == "ssh" and remote.transport is not Transport.SSH:
        raise ValueError(f"'ssh_key_file' needs an ssh URL, and the {what} is {remote.transport}")
    if credentials.kind != "ssh" and remote.transport not in (Transport.HTTP, Transport.HTTPS):
        raise ValueError(
            f"'{credentials.kind}_env' needs an http(s) URL, and the {what} is {remote.transport}"
        )


# -- sources ---------------------------------------------------------------------------------------
ProviderType = Literal["builtin", "github", "gitlab", "gitea", "gerrit"]


class ProviderConfig(BaseModel):
    """Who hosts proposals for a source. Keys other than ``type`` are kept for the provider."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: ProviderType = "builtin"


class BackupConfig(_Model):
    """Where ``refs/revisor/*`` are backed up: any git URL."""

    url: str
    credentials: Credentials | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return _check_url(value, info)

    @model_validator(mode="after")
    def _fit(self) -> Self:
        _check_credentials_fit(self.remote, self.credentials, "backup url")
        return self

    @property
    def remote(self) -> RemoteUrl:
        return parse_remote(self.url)


class GitSource(_Model):
    """A remote repository, mirrored bare under ``data_dir``."""

    type: Literal["git"] = "git"
    url: str
    branch: BranchName | None = None
    credentials: Credentials | None = None
    provider: ProviderConfig = ProviderConfig()
    refresh: Duration = DEFAULT_REFRESH
    allow_direct: bool = False
    backup: BackupConfig | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str, info: ValidationInfo) -> str:
        return _check_url(value, info)

    @model_validator(mode="after")
    def _fit(self) -> Self:
        _check_credentials_fit(self.remote, self.credentials, "url")
        return self

    @property
    def remote(self) -> RemoteUrl:
        """The parsed URL (its password, if any, is a credential: see ``RemoteUrl.password``)."""
        return parse_remote(self.url)


class LocalSource(_Model):
    """An existing repository on this machine, used in place (no mirror)."""

    type: Literal["local"] = "local"
    path: Path
    branch: BranchName | None = None
    provider: ProviderConfig = ProviderConfig()
    allow_direct: bool = False
    backup: BackupConfig | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, value: Path, info: ValidationInfo) -> Path:
        path = _absolute(value, info)
        parse_remote(str(path))  # refuses control characters
        return path

    @property
    def remote(self) -> RemoteUrl:
        return parse_remote(str(self.path))


Source = Annotated[GitSource | LocalSource, Field(discriminator="type")]


RoleName = Literal["reader", "editor", "admin"]


class AuthConfig(_Model):
    """Who may do what beyond the fixed roles (``revisor.services.auth`` has the whole policy):
    the least role that creates candidates, the least role that submits them, and whether an
    editor may patch, rebase and abandon the candidates they created."""

    create_candidates: RoleName = "editor"
    submit_candidates: RoleName = "admin"
    editors_manage_own_candidates: bool = True


# -- jobs ----------------------------------------------------------------------------------------
_JOB_EVERY = {
    "refresh": timedelta(minutes=1),
    "sync": timedelta(minutes=1),
    "squash": timedelta(minutes=5),
    "backup": timedelta(minutes=15),
    "cleanup": timedelta(days=1),
    "maintain": timedelta(days=1),
}


class JobSchedule(_Model):
    """When one job runs: ``every`` (an interval) or ``cron`` (five fields), not both; neither
    keeps the job's default interval. ``lease_ttl``: how long its leases last unrenewed."""

    every: Duration | None = None
    cron: str | None = None
    enabled: bool = True
    lease_ttl: Duration = timedelta(minutes=5)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from croniter import croniter  # type: ignore[import-untyped]

        if not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}: use e.g. '*/5 * * * *'")
        return value

    @model_validator(mode="after")
    def _one(self) -> Self:
        if self.every is not None and self.cron is not None:
            raise ValueError("give either every or cron, not both")
        if self.every is not None and self.every.total_seconds() <= 0:
            raise ValueError("every must be longer than zero")
        if self.lease_ttl.total_seconds() <= 0:
            raise ValueError("lease_ttl must be longer than zero")
        return self


class JobsConfig(_Model):
    """The ``jobs:`` section: one schedule per job (defaults: refresh and sync every minute,
    squash every 5 minutes, backup every 15, cleanup and maintain daily)."""

    refresh: JobSchedule = JobSchedule()
    sync: JobSchedule = JobSchedule()
    squash: JobSchedule = JobSchedule()
    backup: JobSchedule = JobSchedule()
    cleanup: JobSchedule = JobSchedule()
    maintain: JobSchedule = JobSchedule()

    def schedule(self, job: str) -> JobSchedule:
        """The job's schedule with its default interval filled in when neither was given."""
        sched: JobSchedule = getattr(self, job)
        if sched.every is None and sched.cron is None:
            return sched.model_copy(update={"every": _JOB_EVERY[job]})
        return sched


class RetentionConfig(_Model):
    """The ``retention:`` section: what the cleanup job deletes, and after how long a candidate
    has been finished (submitted or abandoned). ``null`` keeps them forever. Open candidates
    and target branches are never deleted, whatever is configured."""

    submitted_workspaces: Duration | None = timedelta(days=7)
    submitted_candidates: Duration | None = None
    abandoned_candidates: Duration | None = timedelta(days=30)

    @model_validator(mode="after")
    def _positive(self) -> Self:
        for name in ("submitted_workspaces", "submitted_candidates", "abandoned_candidates"):
            value = getattr(self, name)
            if value is not None and value.total_seconds() < 0:
                raise ValueError(f"{name} must not be negative")
        return self


# -- the whole configuration -----------------------------------------------------------------------
class Config(_Model):
    """The validated configuration. ``data_dir`` is absolute; sources keep the file's order."""

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, validate_default=True)
    sources: dict[SourceName, Source] = Field(default_factory=dict)
    auth: AuthConfig = AuthConfig()
    jobs: JobsConfig = JobsConfig()
    retention: RetentionConfig = RetentionConfig()

    @field_validator("data_dir")
    @classmethod
    def _data_dir(cls, value: Path, info: ValidationInfo) -> Path:
        return _absolute(value, info)

    def source(self, name: str) -> GitSource | LocalSource:
        """The source called ``name``, else :class:`SourceNotFound`."""
        try:
            return self.sources[name]
        except KeyError:
            raise SourceNotFound(name, tuple(self.sources)) from None

    def credentials(
        self, name: str, env: Mapping[str, str] = os.environ
    ) -> ResolvedCredentials | None:
        """The source's credentials, read from ``env`` now (None: the source needs none).

        A password written into the URL (``https://user:secret@host/…``) counts as credentials:
        the store strips it from the URL it hands to git and passes it like any other secret.
        """
        source = self.source(name)
        if isinstance(source, LocalSource):
            return None
        if source.credentials is not None:
            return source.credentials.resolve(env, field=f"sources.{name}.credentials")
        remote = source.remote
        if remote.password is not None:
            user = unquote(remote.user) if remote.user else TOKEN_USERNAME
            return ResolvedCredentials(user, SecretStr(remote.password), None)
        return None

    def with_source(self, name: str, source: GitSource | LocalSource) -> Config:
        """A copy with one more source (e.g. from ``revisor serve --source``)."""
        check_source_name(name)
        if name in self.sources:
            raise ConfigError(
                f"a source named {name!r} is already configured",
                field="--source",
                hint="remove it from the configuration or serve it under its configured name",
            )
        return self.model_copy(update={"sources": {**self.sources, name: source}})


# -- loading ---------------------------------------------------------------------------------------
class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:
            continue  # unhashable: construct_mapping reports it below
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping",
                node.start_mark,
                f"found a duplicate key {key!r}",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        if item == "[key]":
            continue
        if i == 2 and loc[0] == "sources" and item in _SOURCE_TAGS:
            continue  # pydantic's name for the branch of the tagged union
        parts.append(str(item))
    return ".".join(parts)


def _problem(error: Mapping[str, Any]) -> tuple[str, str]:
    """One pydantic error as (field path, reason), in Revisor's words."""
    loc: tuple[int | str, ...] = tuple(error["loc"])
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    where = _field_path(loc)
    if kind == "missing":
        return where, "field required"
    if kind == "extra_forbidden":
        return where, "unknown field (misspelt?)"
    if kind == "union_tag_not_found":
        return f"{where}.type", "field required: 'git' or 'local'"
    if kind == "union_tag_invalid":
        return f"{where}.type", f"unknown source type {ctx.get('tag')!r}: use 'git' or 'local'"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return where, "expected a mapping (key: value)"
    if kind == "string_type":
        return where, "expected a string"
    if kind in ("bool_type", "bool_parsing"):
        return where, "expected true or false"
    if kind == "value_error" and "error" in ctx:
        return where, str(ctx["error"])
    message: str = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    return where, message[:1].lower() + message[1:]


def _config_error(exc: ValidationError, file: str | None) -> ConfigError:
    problems = tuple(_problem(e) for e in exc.errors(include_url=False, include_input=False))
    first_field, first_reason = problems[0]
    return ConfigError(first_reason, field=first_field, file=file, problems=problems)


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            "no such file", file=label, hint=f"check --config or ${CONFIG_ENV}"
        ) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, not a file", file=label) from None
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", file=label) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}", file=label) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}invalid YAML: {problem}", file=label) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=label) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(
            f"the file must be a mapping (data_dir: …, sources: …), not {kind}", file=label
        )
    return data


def _check_source_keys(data: Mapping[str, Any], label: str | None) -> None:
    """YAML reads ``on``, ``no``, ``true`` or ``1`` as non-strings: say so, with the key as read."""
    sources = data.get("sources")
    if not isinstance(sources, Mapping):
        return
    problems = tuple(
        (
            f"sources.{key}",
            f"a source name must be a string (YAML read it as a {type(key).__name__}: quote it)",
        )
        for key in sources
        if not isinstance(key, str)
    )
    if problems:
        field, reason = problems[0]
        raise ConfigError(reason, field=field, file=label, problems=problems)


def load_config(path: Path | str | None = None, env: Mapping[str, str] = os.environ) -> Config:
    """Read and validate the configuration.

    The file is ``path``, else ``$REVISOR_CONFIG``, else there is none and the defaults apply (no
    sources, ``./var/revisor``). Relative paths in the file are relative to the file's directory.
    ``$REVISOR_DATA_DIR`` overrides ``data_dir`` (relative to the working directory). Any problem
    raises :class:`ConfigError` naming the file and the field.
    """
    if path is None and env.get(CONFIG_ENV):
        path = env[CONFIG_ENV]
    if path is None:
        data: dict[str, Any] = {}
        label: str | None = None
        base = Path.cwd()
    else:
        path = Path(path).expanduser()
        label = str(path)
        data = _read_yaml(path, label)
        base = path.absolute().parent
    _check_source_keys(data, label)
    try:
        config = Config.model_validate(data, context={"base_dir": base})
    except ValidationError as exc:
        raise _config_error(exc, label) from None
    override = env.get(DATA_DIR_ENV)
    if override:
        if "\x00" in override:
            raise ConfigError("must not contain NUL", field=DATA_DIR_ENV)
        config = config.model_copy(update={"data_dir": Path(override).expanduser().absolute()})
    return config


def adhoc_source(location: str) -> tuple[str, GitSource | LocalSource]:
    """A source for ``revisor serve --source PATH_OR_URL``, named after the repository.

    An existing directory becomes a :class:`LocalSource` named after it (``x.git`` → ``x``; for
    ``repo/.git``, ``repo``); anything else must be a remote URL and becomes a :class:`GitSource`
    named after the URL's last path component without ``.git``. The name is sanitised into a
    valid source name.
    """
    field = "--source"
    if not isinstance(location, str) or location.strip() == "":
        raise ConfigError("the location is empty", field=field)
    if location.startswith("-"):
        raise ConfigError(f"{location!r} looks like an option, not a path or URL", field=field)
    if "\x00" not in location and Path(location).expanduser().is_dir():
        directory = Path(location).expanduser().resolve()
        stem = directory.name
        if stem == ".git":
            stem = directory.parent.name
        name = sanitize_source_name(stem.removesuffix(".git"))
        try:
            return name, LocalSource(path=directory)
        except ValidationError as exc:
            raise _config_error(exc, None) from None
    try:
        remote = parse_remote(location)
    except InvalidRemote as exc:
        raise ConfigError(str(exc), field=field) from None
    if remote.transport is Transport.LOCAL:
        raise ConfigError(f"{location!r} is neither an existing directory nor a URL", field=field)
    last = remote.project.rstrip("/").rsplit("/", 1)[-1]
    name = sanitize_source_name(last or remote.host)
    try:
        return name, GitSource(url=location)
    except ValidationError as exc:
        raise _config_error(exc, None) from None
