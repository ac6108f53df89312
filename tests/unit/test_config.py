"""The configuration: every mistake names its file and field; secrets come from the environment."""

from __future__ import annotations

import os
import re
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError

from revisor.config import (
    DEFAULT_REFRESH,
    TOKEN_USERNAME,
    Config,
    Credentials,
    GitSource,
    LocalSource,
    ResolvedCredentials,
    adhoc_source,
    check_source_name,
    load_config,
    parse_duration,
    sanitize_source_name,
)
from revisor.errors import ConfigError, InvalidInput, NotFound, SourceNotFound
from revisor.store.urls import Transport

ISSUE_EXAMPLE = """\
data_dir: ./var/revisor
sources:
  flipt:
    type: git
    url: https://example.com/flipt-io/flipt.git
    branch: main
    credentials: {username: bot, password_env: FLIPT_TOKEN}
    provider: {type: builtin}
    refresh: 30s
    allow_direct: false
    backup:
      url: ssh://git@backup.example.com/revisor/flipt.git
      credentials: {ssh_key_file: keys/backup}
  notes:
    type: local
    path: /srv/notes
"""


def write(tmp_path: Path, text: str, name: str = "revisor.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def config_error(tmp_path: Path, text: str) -> tuple[Path, ConfigError]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    return path, info.value


# -- loading --------------------------------------------------------------------------------------
def test_issue_example(tmp_path: Path) -> None:
    path = write(tmp_path, ISSUE_EXAMPLE)
    config = load_config(path, env={})
    assert config.data_dir == tmp_path / "var" / "revisor"
    assert list(config.sources) == ["flipt", "notes"]

    flipt = config.source("flipt")
    assert isinstance(flipt, GitSource)
    assert flipt.type == "git"
    assert flipt.url == "https://example.com/flipt-io/flipt.git"
    assert flipt.remote.transport is Transport.HTTPS
    assert flipt.branch == "main"
    assert flipt.credentials == Credentials(username="bot", password_env="FLIPT_TOKEN")  # noqa: S106
    assert flipt.provider.type == "builtin"
    assert flipt.refresh == timedelta(seconds=30)
    assert flipt.allow_direct is False
    assert flipt.backup is not None
    assert flipt.backup.remote.transport is Transport.SSH
    assert flipt.backup.credentials is not None
    assert flipt.backup.credentials.ssh_key_file == tmp_path / "keys" / "backup"

    notes = config.source("notes")
    assert isinstance(notes, LocalSource)
    assert notes.path == Path("/srv/notes")
    assert notes.remote.transport is Transport.LOCAL


def test_defaults_without_any_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = load_config(env={})
    assert config.data_dir == tmp_path / "var" / "revisor"
    assert config.sources == {}


def test_minimal_git_source_defaults(tmp_path: Path) -> None:
    config = load_config(
        write(tmp_path, "sources: {x: {type: git, url: 'https://h/x.git'}}"), env={}
    )
    source = config.source("x")
    assert isinstance(source, GitSource)
    assert source.branch is None  # the remote's HEAD
    assert source.credentials is None
    assert source.provider.type == "builtin"
    assert source.refresh == DEFAULT_REFRESH
    assert source.allow_direct is False
    assert source.backup is None


@pytest.mark.parametrize("text", ["", "# only a comment\n", "---\n"])
def test_empty_file_means_defaults(tmp_path: Path, text: str) -> None:
    config = load_config(write(tmp_path, text), env={})
    assert config.sources == {}
    assert config.data_dir == tmp_path / "var" / "revisor"


def test_config_path_from_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "sources: {a: {type: local, path: /srv/a}}")
    other = write(tmp_path, "sources: {b: {type: local, path: /srv/b}}", name="other.yaml")
    assert list(load_config(env={"REVISOR_CONFIG": str(path)}).sources) == ["a"]
    # An explicit path wins over the environment.
    assert list(load_config(other, env={"REVISOR_CONFIG": str(path)}).sources) == ["b"]
    # An empty variable is as good as none.
    assert load_config(env={"REVISOR_CONFIG": ""}).sources == {}


def test_relative_paths_are_relative_to_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    monkeypatch.chdir(tmp_path)
    path = write(
        conf_dir,
        """\
        data_dir: data
        sources:
          a: {type: local, path: repos/a}
          b: {type: git, url: ../mirrors/b.git}
          c:
            type: git
            url: git@h:org/c.git
            credentials: {ssh_key_file: id_c}
        """,
    )
    config = load_config(Path("etc/revisor.yaml"), env={})
    assert config.data_dir == conf_dir / "data"
    a, b, c = (config.source(n) for n in "abc")
    assert isinstance(a, LocalSource) and a.path == conf_dir / "repos" / "a"
    assert isinstance(b, GitSource) and b.url == os.path.normpath(conf_dir / "../mirrors/b.git")
    assert isinstance(c, GitSource) and c.credentials is not None
    assert c.credentials.ssh_key_file == conf_dir / "id_c"
    assert path.exists()


def test_home_is_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = load_config(write(tmp_path, "data_dir: ~/revisor"), env={})
    assert config.data_dir == tmp_path / "home" / "revisor"


def test_data_dir_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "data_dir: /somewhere/else")
    assert load_config(path, env={"REVISOR_DATA_DIR": "/override"}).data_dir == Path("/override")
    assert load_config(path, env={"REVISOR_DATA_DIR": "rel"}).data_dir == tmp_path / "rel"
    assert load_config(path, env={"REVISOR_DATA_DIR": ""}).data_dir == Path("/somewhere/else")
    assert load_config(env={"REVISOR_DATA_DIR": "/d"}).data_dir == Path("/d")


def test_provider_keeps_other_keys(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            sources:
              x:
                type: git
                url: https://h/x
                provider: {type: gitlab, project_id: 42, api_url: "https://h/api/v4"}
            """,
        ),
        env={},
    )
    source = config.source("x")
    assert isinstance(source, GitSource)
    assert source.provider.type == "gitlab"
    assert source.provider.model_extra == {"project_id": 42, "api_url": "https://h/api/v4"}


def test_models_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), env={})
    source = config.source("flipt")
    assert isinstance(source, GitSource)
    with pytest.raises(ValidationError):
        source.url = "https://evil/x"
    with pytest.raises(ValidationError):
        config.data_dir = Path("/tmp")


# -- errors name the file and the field -----------------------------------------------------------
FIELD_ERRORS = [
    # (yaml, field, part of the reason)
    ("sources: {flipt: {type: git}}", "sources.flipt.url", "field required"),
    ("data-dir: x", "data-dir", "unknown field"),
    (
        "sources: {flipt: {type: git, url: 'https://h/x', brnach: main}}",
        "sources.flipt.brnach",
        "unknown field",
    ),
    ("sources: {n: {type: local, path: /x, url: 'https://h/x'}}", "sources.n.url", "unknown field"),
    (
        "sources: {flipt: {type: git, url: 'https://h/x', credentials: {username: u, "
        "passwrd_env: T}}}",
        "sources.flipt.credentials.passwrd_env",
        "unknown field",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', backup: {url: 'https://b/x', bogus: 1}}}",
        "sources.f.backup.bogus",
        "unknown field",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', backup: {}}}",
        "sources.f.backup.url",
        "field required",
    ),
    ("sources: {flipt: {url: 'https://h/x'}}", "sources.flipt.type", "field required"),
    (
        "sources: {flipt: {type: svn, url: 'https://h/x'}}",
        "sources.flipt.type",
        "unknown source type 'svn'",
    ),
    ("sources: {Flipt: {type: local, path: /x}}", "sources.Flipt", "invalid source name"),
    ("sources: {-x: {type: local, path: /x}}", "sources.-x", "invalid source name"),
    ("sources: {.x: {type: local, path: /x}}", "sources..x", "invalid source name"),
    (
        f"sources: {{{'a' * 64}: {{type: local, path: /x}}}}",
        f"sources.{'a' * 64}",
        "invalid source name",
    ),
    ("sources: {'a b': {type: local, path: /x}}", "sources.a b", "invalid source name"),
    (
        "sources: {on: {type: local, path: /x}}",
        "sources.True",
        "must be a string (YAML read it as a bool: quote it)",
    ),
    ("sources: {1: {type: local, path: /x}}", "sources.1", "must be a string"),
    ("sources: {flipt: 3}", "sources.flipt", "expected a mapping"),
    ("sources: [a, b]", "sources", "expected a mapping"),
    ("sources: {notes: {type: local}}", "sources.notes.path", "field required"),
    (
        "sources: {flipt: {type: git, url: 'ext::sh -c touch% /tmp/x'}}",
        "sources.flipt.url",
        "remote-helper",
    ),
    ("sources: {flipt: {type: git, url: '-uhoh'}}", "sources.flipt.url", "option"),
    ("sources: {flipt: {type: git, url: 'foo://h/x'}}", "sources.flipt.url", "unknown scheme"),
    ("sources: {flipt: {type: git, url: ''}}", "sources.flipt.url", "empty"),
    ("sources: {flipt: {type: git, url: 42}}", "sources.flipt.url", "expected a string"),
    (
        "sources: {f: {type: git, url: 'https://h/x', backup: {url: 'fd::3'}}}",
        "sources.f.backup.url",
        "remote-helper",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', credentials: {}}}",
        "sources.f.credentials",
        "exactly one of password_env, token_env or ssh_key_file",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', credentials: {token_env: A, "
        "password_env: B, username: u}}}",
        "sources.f.credentials",
        "found password_env, token_env",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', credentials: {password_env: T}}}",
        "sources.f.credentials",
        "'username' is required",
    ),
    (
        "sources: {f: {type: git, url: 'ssh://h/x', credentials: {username: u, ssh_key_file: k}}}",
        "sources.f.credentials",
        "put the user in the URL",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', credentials: {token_env: FLIPT-TOKEN}}}",
        "sources.f.credentials.token_env",
        "not an environment variable name",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', credentials: {token_env: 7}}}",
        "sources.f.credentials.token_env",
        "expected a string",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', credentials: {ssh_key_file: k}}}",
        "sources.f",
        "'ssh_key_file' needs an ssh URL",
    ),
    (
        "sources: {f: {type: git, url: 'git@h:x', credentials: {token_env: T}}}",
        "sources.f",
        "'token_env' needs an http(s) URL",
    ),
    (
        "sources: {f: {type: git, url: 'https://u:pw@h/x', credentials: {token_env: T}}}",
        "sources.f",
        "keep only 'credentials'",
    ),
    ("sources: {f: {type: git, url: 'ssh://u:pw@h/x'}}", "sources.f", "only used by http(s) URLs"),
    (
        "sources: {f: {type: git, url: 'https://h/x', refresh: 30 parsecs}}",
        "sources.f.refresh",
        "invalid duration",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', refresh: -5}}",
        "sources.f.refresh",
        "zero or positive",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', refresh: true}}",
        "sources.f.refresh",
        "not true/false",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', refresh: [1]}}",
        "sources.f.refresh",
        "expected a duration",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', branch: -x}}",
        "sources.f.branch",
        "must not start with '-'",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', branch: refs/heads/main}}",
        "sources.f.branch",
        "short name",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', branch: a..b}}",
        "sources.f.branch",
        "contains '..'",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', branch: HEAD}}",
        "sources.f.branch",
        "not a branch",
    ),
    (
        "sources: {f: {type: local, path: /x, branch: 'a b'}}",
        "sources.f.branch",
        "invalid branch name",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', allow_direct: maybe}}",
        "sources.f.allow_direct",
        "expected true or false",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', provider: {type: svnhub}}}",
        "sources.f.provider.type",
        "builtin",
    ),
    (
        "sources: {f: {type: git, url: 'https://h/x', provider: builtin}}",
        "sources.f.provider",
        "expected a mapping",
    ),
    ("data_dir: [a]", "data_dir", "path"),
]


@pytest.mark.parametrize(("text", "field", "reason"), FIELD_ERRORS)
def test_errors_name_the_file_and_the_field(
    tmp_path: Path, text: str, field: str, reason: str
) -> None:
    path, err = config_error(tmp_path, text)
    assert isinstance(err, InvalidInput)
    assert err.file == str(path)
    assert err.field == field
    assert reason in err.reason
    assert str(err).startswith(f"{path}: {field}: ")


def test_field_required_message_reads_as_in_the_issue(tmp_path: Path) -> None:
    path, err = config_error(tmp_path, "sources: {flipt: {type: git}}")
    assert str(err) == f"{path}: sources.flipt.url: field required"


def test_every_problem_is_reported(tmp_path: Path) -> None:
    _, err = config_error(
        tmp_path,
        """\
        bogus: 1
        sources:
          a: {type: git}
          b: {type: local, path: /x, refresh: 5m}
        """,
    )
    fields = {f for f, _ in err.problems}
    assert fields == {"bogus", "sources.a.url", "sources.b.refresh"}
    assert len(str(err).splitlines()) == 3
    assert all(line.startswith(f"{err.file}: ") for line in str(err).splitlines())


def test_errors_never_echo_a_password(tmp_path: Path) -> None:
    _, err = config_error(
        tmp_path, "sources: {f: {type: git, url: 'foo://bot:hunter2@h/x', brnach: x}}"
    )
    assert "hunter2" not in str(err)
    assert "***@h" in str(err)


# -- errors in the file itself --------------------------------------------------------------------
def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path, err = config_error(tmp_path, "sources:\n  flipt:\n    type: git\n   url: [oops\n")
    assert err.field is None
    assert re.match(rf"{re.escape(str(path))}: line \d+, column \d+: invalid YAML: ", str(err))


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    _, err = config_error(
        tmp_path,
        """\
        sources:
          flipt: {type: git, url: 'https://h/a'}
          notes: {type: local, path: /srv/notes}
          flipt: {type: git, url: 'https://h/b'}
        """,
    )
    assert "line 4" in str(err)
    assert "duplicate key 'flipt'" in str(err)


def test_duplicate_nested_keys_are_refused(tmp_path: Path) -> None:
    _, err = config_error(tmp_path, "sources: {f: {type: git, url: a, url: b}}")
    assert "duplicate key 'url'" in str(err)


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "a list"), ("just text\n", "a str"), ("42\n", "a int")]
)
def test_file_must_be_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path, err = config_error(tmp_path, text)
    assert str(err) == f"{path}: the file must be a mapping (data_dir: …, sources: …), not {kind}"


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file") as info:
        load_config(tmp_path / "nope.yaml", env={})
    assert info.value.file == str(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(env={"REVISOR_CONFIG": str(tmp_path / "nope.yaml")})


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "revisor.yaml"
    path.write_bytes(b"data_dir: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path, env={})


def test_yaml_tags_that_build_objects_are_refused(tmp_path: Path) -> None:
    _, err = config_error(tmp_path, "data_dir: !!python/object/apply:os.system ['true']\n")
    assert "invalid YAML" in str(err)


# -- credentials ----------------------------------------------------------------------------------
def test_password_credentials_resolve_from_the_environment() -> None:
    creds = Credentials(username="bot", password_env="FLIPT_TOKEN")  # noqa: S106
    resolved = creds.resolve({"FLIPT_TOKEN": "hunter2"})
    assert resolved.username == "bot"
    assert resolved.password is not None
    assert resolved.password.get_secret_value() == "hunter2"
    assert resolved.ssh_key_file is None
    assert resolved.secrets() == ("hunter2",)
    assert "hunter2" not in repr(resolved)
    assert "hunter2" not in str(resolved)
    assert "hunter2" not in repr(creds)


def test_token_credentials_default_user_name() -> None:
    resolved = Credentials(token_env="T").resolve({"T": "tok"})  # noqa: S106
    assert resolved.username == TOKEN_USERNAME == "x-access-token"
    assert resolved.password == SecretStr("tok")
    me = Credentials(username="me", token_env="T")  # noqa: S106
    assert me.resolve({"T": "tok"}).username == "me"


def test_ssh_key_credentials(tmp_path: Path) -> None:
    resolved = Credentials(ssh_key_file=tmp_path / "id").resolve({})
    assert resolved == ResolvedCredentials(None, None, tmp_path / "id")
    assert resolved.secrets() == ()


def test_a_rotated_token_takes_effect_on_the_next_resolve() -> None:
    creds = Credentials(token_env="T")  # noqa: S106
    env = {"T": "old"}
    assert creds.resolve(env).secrets() == ("old",)
    env["T"] = "new"
    assert creds.resolve(env).secrets() == ("new",)


@pytest.mark.parametrize(("env", "state"), [({}, "is not set"), ({"FLIPT_TOKEN": ""}, "is empty")])
def test_missing_secret_names_the_variable(env: dict[str, str], state: str) -> None:
    creds = Credentials(username="bot", password_env="FLIPT_TOKEN")  # noqa: S106
    with pytest.raises(ConfigError) as info:
        creds.resolve(env)
    expected = f"credentials.password_env: the environment variable FLIPT_TOKEN {state}"
    assert str(info.value) == expected
    assert info.value.hint is not None and "FLIPT_TOKEN" in info.value.hint


def test_config_credentials_name_the_source(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), env={})
    with pytest.raises(ConfigError) as info:
        config.credentials("flipt", env={})
    assert info.value.field == "sources.flipt.credentials.password_env"
    assert "FLIPT_TOKEN" in str(info.value)
    resolved = config.credentials("flipt", env={"FLIPT_TOKEN": "s"})
    assert resolved is not None and resolved.username == "bot"
    assert config.credentials("notes", env={}) is None


def test_a_password_in_the_url_counts_as_credentials(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            """\
            sources:
              a: {type: git, url: 'https://bot%40corp:p%40ss@h/x.git'}
              b: {type: git, url: 'https://h/x.git'}
            """,
        ),
        env={},
    )
    resolved = config.credentials("a", env={})
    assert resolved is not None
    assert resolved.username == "bot@corp"
    assert resolved.secrets() == ("p@ss",)
    for shown in (repr(config), str(config), repr(config.source("a")), str(config.source("a"))):
        assert "p@ss" not in shown and "p%40ss" not in shown
        assert "https://***@h/x.git" in shown
    assert config.credentials("b", env={}) is None


# -- sources by name ------------------------------------------------------------------------------
def test_unknown_source(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), env={})
    with pytest.raises(SourceNotFound) as info:
        config.source("flip")
    assert isinstance(info.value, NotFound)
    assert info.value.name == "flip"
    assert info.value.hint is not None and "flipt, notes" in info.value.hint


def test_with_source(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ISSUE_EXAMPLE), env={})
    extra = LocalSource(path=tmp_path)
    bigger = config.with_source("extra", extra)
    assert list(bigger.sources) == ["flipt", "notes", "extra"]
    assert "extra" not in config.sources
    with pytest.raises(ConfigError, match="already configured"):
        bigger.with_source("notes", extra)
    with pytest.raises(ConfigError, match="invalid source name"):
        config.with_source("Bad Name", extra)


@pytest.mark.parametrize("name", ["a", "flipt", "0", "a.b_c-d", "x" * 63])
def test_valid_source_names(name: str) -> None:
    assert check_source_name(name) == name


@pytest.mark.parametrize("name", ["", "A", "-a", ".a", "_a", "a b", "x" * 64, "é", "a/b"])
def test_invalid_source_names(name: str) -> None:
    with pytest.raises(ConfigError):
        check_source_name(name)


@given(st.text(max_size=100))
def test_sanitised_names_are_valid(text: str) -> None:
    assert check_source_name(sanitize_source_name(text))


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Flipt", "flipt"),
        ("My Repo!", "my-repo"),
        ("--x--", "x"),
        ("", "source"),
        ("ÄÖ", "source"),
        ("a" * 80, "a" * 63),
        ("v1.2_rc", "v1.2_rc"),
    ],
)
def test_sanitize_examples(text: str, name: str) -> None:
    assert sanitize_source_name(text) == name


# -- durations ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("1h", 3600),
        ("1d", 86400),
        ("1h30m", 5400),
        ("2.5s", 2.5),
        (" 10 ", 10),
        ("0", 0),
        (45, 45),
        (2.5, 2.5),
        (timedelta(minutes=1), 60),
    ],
)
def test_durations(value: object, seconds: float) -> None:
    assert parse_duration(value) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "5x",
        "m",
        "1.5.2s",
        "s5",
        "1h-30m",
        -1,
        True,
        None,
        float("nan"),
        float("inf"),
        "99999999999999d",
    ],
)
def test_invalid_durations(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


# -- ad-hoc sources (revisor serve --source) ------------------------------------------------------
def test_adhoc_local_directory(tmp_path: Path) -> None:
    repo = tmp_path / "My Notes"
    repo.mkdir()
    name, source = adhoc_source(str(repo))
    assert name == "my-notes"
    assert isinstance(source, LocalSource)
    assert source.path == repo


def test_adhoc_bare_repository_and_dot_git(tmp_path: Path) -> None:
    (tmp_path / "Flipt.git").mkdir()
    assert adhoc_source(str(tmp_path / "Flipt.git"))[0] == "flipt"
    (tmp_path / "work" / ".git").mkdir(parents=True)
    name, source = adhoc_source(str(tmp_path / "work" / ".git"))
    assert name == "work"
    assert isinstance(source, LocalSource)


def test_adhoc_relative_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path)
    name, source = adhoc_source("repo")
    assert name == "repo"
    assert isinstance(source, LocalSource) and source.path == tmp_path.resolve() / "repo"
    name, source = adhoc_source(".")
    assert name == sanitize_source_name(tmp_path.resolve().name)


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("https://example.com/flipt-io/flipt.git", "flipt"),
        ("https://example.com/flipt-io/Flipt/", "flipt"),
        ("git@github.com:org/My_Repo.git", "my_repo"),
        ("ssh://git@h:2222/x/y.git", "y"),
        ("file:///nonexistent/srv/z.git", "z"),
        ("https://example.com", "example.com"),
    ],
)
def test_adhoc_url(url: str, name: str) -> None:
    got_name, source = adhoc_source(url)
    assert got_name == name
    assert isinstance(source, GitSource)
    assert source.url == url


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("-x", "looks like an option"),
        ("--upload-pack=x", "looks like an option"),
        ("ext::sh -c x", "remote-helper"),
        ("/definitely/not/here", "neither an existing directory nor a URL"),
        ("foo://h/x", "unknown scheme"),
    ],
)
def test_adhoc_refused(location: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        adhoc_source(location)
    assert info.value.field == "--source"
    assert reason in str(info.value)


def test_adhoc_password_url_is_refused_for_ssh() -> None:
    with pytest.raises(ConfigError, match="only used by http"):
        adhoc_source("ssh://u:pw@h/x")


def test_programmatic_construction_validates_too() -> None:
    with pytest.raises(ValidationError):
        GitSource(url="ext::sh")
    with pytest.raises(ValidationError):
        Config.model_validate({"sources": {"Bad": {"type": "local", "path": "/x"}}})
    assert Config().sources == {}
    assert Config().data_dir.is_absolute()
