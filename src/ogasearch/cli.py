"""The ``ogasearch`` command line: a thin layer over the library."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import click

from ogasearch import __version__
from ogasearch.settings import Settings, load_settings

F = Callable[..., Any]


def common_options(func: F) -> F:
    """Options every command takes; each falls back to OGASEARCH_* and the config file."""

    @click.option("--data", type=click.Path(path_type=Path), help="Data folder [OGASEARCH_DATA].")
    @click.option("--site", help="Site root URL [OGASEARCH_SITE], default https://opengameart.org.")
    @click.option("--catalog", help="Catalog DB URL, sqlite or postgresql [OGASEARCH_CATALOG].")
    @click.option("--vectors", help="Vector index URI [OGASEARCH_VECTORS], default DATA/vectors.")
    @click.option(
        "--delay", type=float, help="Seconds between requests [OGASEARCH_DELAY], default 1.0."
    )
    @click.option("--workers", type=int, help="Worker processes for decoding/embedding.")
    @click.option(
        "--config",
        type=click.Path(path_type=Path, dir_okay=False),
        help="TOML config file [OGASEARCH_CONFIG], default DATA/ogasearch.toml.",
    )
    @click.option("-v", "--verbose", count=True, help="More logging (-vv for debug).")
    @functools.wraps(func)
    def wrapper(*args: Any, config: Path | None, verbose: int, **kwargs: Any) -> Any:
        names = ("data", "site", "catalog", "vectors", "delay", "workers")
        overrides = {n: kwargs.pop(n) for n in names}
        if config is not None:
            import os

            os.environ["OGASEARCH_CONFIG"] = str(config)
        logging.basicConfig(
            level=logging.WARNING - 10 * min(verbose, 2),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        return func(*args, settings=load_settings(**overrides), **kwargs)

    return wrapper


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def _echo_stats(name: str, stats: Any) -> None:
    click.echo(f"{name}: {json.dumps(stats, default=_jsonable)}")


@click.group()
@click.version_option(__version__)
def main() -> None:
    """ogasearch: reverse image search for the pixel art on OpenGameArt.org."""


def _stage_command(name: str, help_text: str) -> None:
    @main.command(name=name, help=help_text)
    @common_options
    def command(settings: Settings) -> None:
        from ogasearch.pipeline import STAGES, Workspace

        with Workspace(settings) as ws:
            _echo_stats(name, STAGES[name](ws))


_stage_command("download", "Download every pending file into the content-addressed store.")
_stage_command("extract", "Unpack archives and register every image (safely, with limits).")
_stage_command("tiles", "Cut sprite sheets and tile sets into tiles.")


@main.command()
@common_options
@click.option("--full", is_flag=True, help="Walk the whole listing, not only the new entries.")
@click.option("--recheck-days", type=float, help="Re-check pages older than this (0 = all).")
def crawl(settings: Settings, full: bool, recheck_days: float | None) -> None:
    """Walk the art listing and fetch new and changed content pages."""
    from ogasearch.pipeline import Workspace, run_crawl

    if recheck_days is not None:
        settings.recheck_days = recheck_days
    with Workspace(settings) as ws:
        _echo_stats("crawl", run_crawl(ws, full=full))


@main.command()
@common_options
@click.option("--full", is_flag=True, help="Walk the whole listing, not only the new entries.")
@click.option("--recheck-days", type=float, help="Re-check pages older than this (0 = all).")
@click.option("--stage", "stages", multiple=True, help="Run only these stages (repeatable).")
def update(
    settings: Settings, full: bool, recheck_days: float | None, stages: tuple[str, ...]
) -> None:
    """Run every stage in order: the one command to build or refresh the search index."""
    from ogasearch.pipeline import STAGES, Workspace
    from ogasearch.pipeline import update as run_update

    unknown = set(stages) - set(STAGES)
    if unknown:
        raise click.BadParameter(f"unknown stage(s) {sorted(unknown)}; known: {list(STAGES)}")
    if recheck_days is not None:
        settings.recheck_days = recheck_days
    with Workspace(settings) as ws:
        for name, stats in run_update(ws, full=full, stages=list(stages) or None).items():
            _echo_stats(name, stats)


@main.command()
@common_options
@click.option("--stage", help="Only failures of this stage.")
@click.option("--limit", type=int, default=50, show_default=True)
def failures(settings: Settings, stage: str | None, limit: int) -> None:
    """List recorded failures, newest first: stage, item and reason."""
    from sqlalchemy import select

    from ogasearch.catalog.schema import failures as failures_table
    from ogasearch.pipeline import Workspace

    with Workspace(settings) as ws:
        query = select(failures_table).order_by(failures_table.c.id.desc()).limit(limit)
        if stage:
            query = query.where(failures_table.c.stage == stage)
        with ws.engine.connect() as conn:
            for row in conn.execute(query):
                click.echo(f"{row.at:%Y-%m-%d %H:%M:%S} {row.stage:<9} {row.item}: {row.reason}")


@main.command()
@common_options
def stats(settings: Settings) -> None:
    """Counts of pages, files, members, images and tiles by state."""
    from ogasearch.catalog.stats import catalog_stats
    from ogasearch.pipeline import Workspace

    with Workspace(settings) as ws:
        click.echo(json.dumps(catalog_stats(ws.engine), indent=2))
