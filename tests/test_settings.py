"""Settings: every precedence rule (option > environment > config file > default), how the
config file is found (``--config``, ``OGASEARCH_CONFIG``, ``DATA/ogasearch.toml`` with ``DATA``
from ``--data`` or ``OGASEARCH_DATA``), the one-line refusals, and the README's configuration
tables, which must list every setting exactly as the code has it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from pydantic_core import PydanticUndefined

from ogasearch import __version__
from ogasearch.catalog import open_catalog
from ogasearch.cli import main
from ogasearch.settings import ConfigError, Limits, Serving, Settings, load_settings

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No OGASEARCH_* variable from the test run leaks in; the default data folder is empty."""
    for name in list(os.environ):
        if name.startswith("OGASEARCH_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write_toml(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- precedence ---------------------------------------------------------------------------


def test_defaults_when_nothing_is_given() -> None:
    settings = load_settings()
    assert settings.delay == 1.0 and settings.data == Path("ogasearch-data")
    assert settings.catalog is None and settings.limits.max_image_frames == 2000


def test_default_data_folder_config_file_is_read(tmp_path: Path) -> None:
    write_toml(tmp_path / "ogasearch-data" / "ogasearch.toml", "delay = 5.0\n")
    assert load_settings().delay == 5.0


def test_data_option_finds_its_config_file(tmp_path: Path) -> None:
    write_toml(tmp_path / "oga" / "ogasearch.toml", 'catalog = "postgresql://u@h/db"\n')
    settings = load_settings(data=tmp_path / "oga")
    assert settings.catalog == "postgresql://u@h/db"


def test_data_environment_finds_its_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(tmp_path / "oga" / "ogasearch.toml", 'vectors = "http://m:19530"\n')
    monkeypatch.setenv("OGASEARCH_DATA", str(tmp_path / "oga"))
    assert load_settings().vectors == "http://m:19530"


def test_data_option_beats_data_environment_for_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(tmp_path / "a" / "ogasearch.toml", "delay = 2.0\n")
    write_toml(tmp_path / "b" / "ogasearch.toml", "delay = 3.0\n")
    monkeypatch.setenv("OGASEARCH_DATA", str(tmp_path / "a"))
    assert load_settings(data=tmp_path / "b").delay == 3.0


def test_environment_beats_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(tmp_path / "oga" / "ogasearch.toml", "delay = 2.0\nretries = 9\n")
    monkeypatch.setenv("OGASEARCH_DELAY", "4.5")
    settings = load_settings(data=tmp_path / "oga")
    assert (settings.delay, settings.retries) == (4.5, 9)


def test_option_beats_environment_and_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(tmp_path / "oga" / "ogasearch.toml", "delay = 2.0\n")
    monkeypatch.setenv("OGASEARCH_DELAY", "4.5")
    assert load_settings(data=tmp_path / "oga", delay=0.25).delay == 0.25


def test_none_means_not_given() -> None:
    assert load_settings(delay=None, catalog=None).delay == 1.0


def test_config_option_beats_config_environment_and_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_toml(tmp_path / "oga" / "ogasearch.toml", "delay = 2.0\n")
    by_env = write_toml(tmp_path / "env.toml", "delay = 3.0\n")
    by_option = write_toml(tmp_path / "option.toml", "delay = 4.0\n")
    monkeypatch.setenv("OGASEARCH_CONFIG", str(by_env))
    assert load_settings(data=tmp_path / "oga").delay == 3.0
    assert load_settings(data=tmp_path / "oga", config=by_option).delay == 4.0


def test_limits_environment_beats_config_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = "[limits]\nmax_image_frames = 5\nmax_archive_depth = 1\n"
    write_toml(tmp_path / "oga" / "ogasearch.toml", toml)
    monkeypatch.setenv("OGASEARCH_LIMIT_MAX_IMAGE_FRAMES", "7")
    limits = load_settings(data=tmp_path / "oga").limits
    assert (limits.max_image_frames, limits.max_archive_depth) == (7, 1)
    assert load_settings().limits.max_image_frames == 7  # the environment alone
    given = load_settings(data=tmp_path / "oga", limits=Limits(max_image_frames=3)).limits
    assert given.max_image_frames == 3  # given explicitly beats both


# --- refusals -----------------------------------------------------------------------------


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config=tmp_path / "nope.toml")


def test_unknown_key_and_bad_value_are_errors(tmp_path: Path) -> None:
    typo = write_toml(tmp_path / "typo.toml", "dealy = 2.0\n")
    with pytest.raises(ConfigError, match="dealy"):
        load_settings(config=typo)
    bad = write_toml(tmp_path / "bad.toml", 'delay = "slow"\n')
    with pytest.raises(ConfigError, match="delay"):
        load_settings(config=bad)
    broken = write_toml(tmp_path / "broken.toml", "delay = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(config=broken)


# --- the command line ----------------------------------------------------------------------


def test_cli_data_option_reads_the_folder_config_and_names_the_backends(tmp_path: Path) -> None:
    """`stats --data DIR` uses the catalog DIR/ogasearch.toml names (not DIR/catalog.sqlite),
    and says so; the config path travels as an argument, never through os.environ."""
    elsewhere = tmp_path / "elsewhere" / "catalog.sqlite"
    open_catalog(f"sqlite:///{elsewhere}").dispose()
    write_toml(
        tmp_path / "oga" / "ogasearch.toml",
        f'catalog = "sqlite:///{elsewhere}"\nvectors = "{tmp_path / "vec"}"\n',
    )
    runner = CliRunner()
    before = dict(os.environ)
    result = runner.invoke(main, ["stats", "--data", str(tmp_path / "oga")])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["catalog"] == f"sqlite:///{elsewhere}"
    assert shown["vectors"] == str(tmp_path / "vec")
    assert sorted(p.name for p in (tmp_path / "oga").iterdir()) == ["ogasearch.toml"]
    config = write_toml(tmp_path / "other.toml", f'catalog = "sqlite:///{elsewhere}"\n')
    result = runner.invoke(main, ["stats", "--data", str(tmp_path), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["vectors"] == f"embedded HNSW in {tmp_path / 'vectors'}"
    assert dict(os.environ) == before


def test_cli_masks_the_catalog_password(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        main,
        ["stats", "--data", str(tmp_path), "--catalog", "postgresql://u:s3cret@127.0.0.1:1/x"],
    )
    assert result.exit_code == 1
    assert "s3cret" not in result.output and "u:***@127.0.0.1:1/x" in result.output


@pytest.mark.parametrize(
    ("toml", "expected"),
    [("dealy = 2.0\n", "dealy"), ("delay = \n", "ogasearch.toml")],
)
def test_cli_bad_config_is_one_line(tmp_path: Path, toml: str, expected: str) -> None:
    write_toml(tmp_path / "oga" / "ogasearch.toml", toml)
    result = CliRunner().invoke(main, ["stats", "--data", str(tmp_path / "oga")])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and expected in result.output, result.output
    result = CliRunner().invoke(main, ["stats", "--config", str(tmp_path / "missing.toml")])
    assert result.exit_code == 1 and "does not exist" in result.output


# --- the README lists every setting ----------------------------------------------------------


def _readme_rows() -> list[list[str]]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 5 and "OGASEARCH_" in cells[1]:
            rows.append(cells)
    return rows


def _code(cell: str) -> str | None:
    found = re.search(r"`([^`]*)`", cell)
    return found.group(1) if found else None


def _fields() -> dict[str, tuple[str, Any]]:
    """Environment variable -> (config key, plain default or None) for every field."""
    out: dict[str, tuple[str, Any]] = {}
    for model, prefix, key_prefix in (
        (Settings, "OGASEARCH_", ""),
        (Limits, "OGASEARCH_LIMIT_", "limits."),
        (Serving, "OGASEARCH_SERVE_", "serving."),
    ):
        for name, info in model.model_fields.items():
            if name in ("limits", "serving"):
                continue
            default = None if info.default is PydanticUndefined else info.default
            out[prefix + name.upper()] = (key_prefix + name, default)
    return out


def _render(value: Any) -> str:
    """A default as the README writes it (TOML literals; the version as VERSION)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value).replace(__version__, "VERSION")


def _env_names_in_source() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "src" / "ogasearch").rglob("*.py"):
        names |= set(re.findall(r"\bOGASEARCH_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    return names


def _cli_options() -> dict[str, str]:
    """Option (``--data``) -> parameter name, over every command."""
    out: dict[str, str] = {}
    for command in main.commands.values():
        for param in command.params:
            if isinstance(param, click.Option):
                for opt in param.opts:
                    out[opt] = str(param.name)
    return out


def test_readme_configuration_tables_list_every_setting() -> None:
    rows = _readme_rows()
    listed = [_code(row[1]) for row in rows]
    assert len(listed) == len(set(listed)), "a variable is listed twice"
    fields = _fields()
    assert set(listed) == set(fields) | _env_names_in_source()
    options = _cli_options()
    for option_cell, env_cell, key_cell, default_cell, _ in rows:
        env = _code(env_cell)
        assert env is not None
        if env not in fields:  # environment only (OGASEARCH_CONFIG, OGASEARCH_PROGRESS)
            continue
        key, default = fields[env]
        # The config file cannot name itself: `config` has no config key.
        assert _code(key_cell) == (None if key == "config" else key), env
        if default is not None:
            assert _code(default_cell) == _render(default), env
        option = _code(option_cell)
        if option is not None:
            flag = option.split()[0]
            assert options.get(flag) == key, f"{flag} is not the option for {key}"
