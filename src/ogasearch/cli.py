"""The ``ogasearch`` command line: a thin layer over the library."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import click

from ogasearch import __version__
from ogasearch.catalog.db import CatalogError
from ogasearch.settings import ConfigError, Settings, load_settings

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
        logging.basicConfig(
            level=logging.WARNING - 10 * min(verbose, 2),
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            stream=sys.stderr,
        )
        try:
            settings = load_settings(config=config, **overrides)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        try:
            return func(*args, settings=settings, **kwargs)
        except CatalogError as exc:  # no catalog where the settings point, or none reachable
            raise click.ClickException(str(exc)) from None

    return wrapper


def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def _echo_stats(name: str, stats: Any) -> None:
    click.echo(f"{name}: {json.dumps(stats, default=_jsonable)}")


@contextmanager
def _model_errors() -> Iterator[None]:
    """A model that cannot be opened here is an expected condition: click's one-line error."""
    from ogasearch.embed.onnx_export import ModelUnavailable

    try:
        yield
    except ModelUnavailable as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.version_option(__version__)
def main() -> None:
    """ogasearch: reverse image search for the pixel art on OpenGameArt.org."""


def _stage_command(name: str, help_text: str) -> None:
    @main.command(name=name, help=help_text)
    @common_options
    def command(settings: Settings) -> None:
        from ogasearch.pipeline import STAGES
        from ogasearch.workspace import Workspace

        with Workspace(settings) as ws, _model_errors():
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
    from ogasearch.pipeline import run_crawl
    from ogasearch.workspace import Workspace

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
    from ogasearch.pipeline import STAGES
    from ogasearch.pipeline import update as run_update
    from ogasearch.workspace import Workspace

    unknown = set(stages) - set(STAGES)
    if unknown:
        raise click.BadParameter(f"unknown stage(s) {sorted(unknown)}; known: {list(STAGES)}")
    if recheck_days is not None:
        settings.recheck_days = recheck_days
    with Workspace(settings) as ws, _model_errors():
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
    from ogasearch.workspace import Workspace

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
    """Counts of pages, files, members, images and tiles by state, and which catalog and
    vector store they come from."""
    from ogasearch.catalog.stats import catalog_stats
    from ogasearch.workspace import Workspace

    with Workspace(settings, create=False) as ws:
        click.echo(json.dumps({**ws.backends, **catalog_stats(ws.engine)}, indent=2))


@main.command(name="copy-catalog")
@click.argument("source_url")
@click.argument("target_url")
def copy_catalog(source_url: str, target_url: str) -> None:
    """Copy the catalog at SOURCE_URL into the empty one at TARGET_URL, ids included, and
    build the target's keyword index (e.g. sqlite:///oga/catalog.sqlite to postgresql://...).
    Stop every ``update`` on the source first."""
    from ogasearch.catalog import CatalogError, open_catalog
    from ogasearch.catalog.copy import copy_catalog as copy_tables
    from ogasearch.index.keywords import refresh_keywords

    try:
        copied = copy_tables(source_url, target_url)
        target = open_catalog(target_url)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        keywords = refresh_keywords(target)
    finally:
        target.dispose()
    for name, count in copied.rows.items():
        click.echo(f"{name}: {count} rows")
    _echo_stats("keywords", keywords)


@main.command()
@common_options
@click.option("--rebuild", is_flag=True, help="Forget every group and match all images again.")
def provenance(settings: Settings, rebuild: bool) -> None:
    """Find the same art on several pages (new images only, unless --rebuild)."""
    from ogasearch.provenance.stage import build_copy_groups
    from ogasearch.workspace import Workspace

    with Workspace(settings) as ws, _model_errors():
        ws.check_extractor()
        _echo_stats("provenance", build_copy_groups(ws, rebuild=rebuild))


@main.command(name="map")
@common_options
@click.option("--rebuild", is_flag=True, help="Lay the whole map out again (new layout).")
def map_command(settings: Settings, rebuild: bool) -> None:
    """Place new images on the map of all the art and draw their tiles."""
    from ogasearch.pipeline import run_map
    from ogasearch.workspace import Workspace

    with Workspace(settings) as ws:
        _echo_stats("map", run_map(ws, rebuild=rebuild))


@main.command()
@common_options
@click.option("--flag", type=click.Choice(["different-author", "licence-conflict", "same-author"]))
@click.option("--license", "licence", help="Only groups where a page carries this licence.")
@click.option("--limit", type=int, help="At most this many groups (default: all).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table")
def conflicts(
    settings: Settings, flag: str | None, licence: str | None, limit: int | None, fmt: str
) -> None:
    """The same art on several pages: each group's earliest page, then every other page with
    how it matches and its flags (built by `update` or `provenance`)."""
    import csv

    from ogasearch.search.provenance import MAX_LIMIT, ROW_FIELDS, member_rows, read_conflicts
    from ogasearch.web.schemas import ConflictsOut, copy_group_out
    from ogasearch.workspace import Workspace

    groups: list[Any] = []
    total = 0
    with Workspace(settings) as ws, ws.engine.connect() as conn:
        while limit is None or len(groups) < limit:
            size = MAX_LIMIT if limit is None else min(MAX_LIMIT, limit - len(groups))
            page = read_conflicts(conn, flag, licence, len(groups), size)
            groups += page.groups
            total = page.total
            if len(page.groups) < size:
                break
    if fmt == "json":
        out = ConflictsOut(
            total=total, offset=0, limit=len(groups), groups=[copy_group_out(g) for g in groups]
        )
        click.echo(out.model_dump_json(indent=2))
        return
    rows = member_rows(groups)
    if fmt == "csv":
        writer = csv.DictWriter(sys.stdout, fieldnames=ROW_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        return
    click.echo(f"{total} group(s)")
    for row in rows:
        lead = f"#{row['group']:<5}" if row["position"] == 0 else "      "
        click.echo(
            f"{lead} {row['how']:<16} {row['post_date']:<10} {row['author']:<20.20} "
            f"{row['licenses']:<24.24} {row['flags']:<34} {row['page_url']}"
        )


_stage_command("embed", "Embed every image and tile (pixel-art preprocessing + CNN).")
_stage_command("index", "Add embedded images to the vector index; refresh keyword search.")


@main.command()
@common_options
@click.option("--refit", is_flag=True, help="Fit a new codec, then re-embed and re-index.")
@click.option("--sample", type=int, default=20_000, show_default=True, help="Images to fit on.")
def vectors(settings: Settings, refit: bool, sample: int) -> None:
    """Show the compact-vector codec of this data folder; --refit fits a new one on a sample
    of the catalog's images (embedded again from the blob store) and re-embeds every image."""
    from ogasearch.embed.compact import load_codec
    from ogasearch.embed.compact import refit as run_refit
    from ogasearch.pipeline import update
    from ogasearch.workspace import Workspace

    with Workspace(settings, create=False) as ws, _model_errors():
        if refit:
            ws.check_extractor()
            _ = ws.extractor  # the vector space being left: codec_changed removes its index
            run_refit(ws.engine, settings, ws.store, ws.model, sample)
            ws.codec_changed()
            for name, stats in update(ws, stages=["embed", "index"]).items():
                _echo_stats(name, stats)
        codec = load_codec(ws.engine, settings.extractor)
    if codec is None:
        click.echo("no vector codec yet: vectors are stored full")
    else:
        click.echo(
            f"codec {codec.ident}: {codec.source_dim}-d -> {codec.dim}-d float16"
            f" ({2 * codec.dim} B per vector), fitted on {codec.fitted_on} vectors"
            f" at {codec.fitted_at}"
        )


@main.command()
@common_options
@click.option("--repair/--no-repair", default=True, show_default=True, help="Fix what is found.")
def check(settings: Settings, repair: bool) -> None:
    """Compare the catalog with the vector index and the patch table; repair any mismatch.
    Exit 1 if not clean. The summary names the catalog and the vector store it checked."""
    from ogasearch.index.stage import check as run_check
    from ogasearch.workspace import Workspace

    with Workspace(settings, create=False) as ws:
        report = run_check(ws.engine, ws.index, ws.patches, repair=repair)
        backends = ws.backends
    summary = {
        **backends,
        "indexed_in_catalog": report.indexed_in_catalog,
        "in_index": report.in_index,
        "missing_from_index": len(report.missing_from_index),
        "unknown_in_index": len(report.unknown_in_index),
        "unmarked_in_index": len(report.unmarked_in_index),
        "embedded_without_vector": len(report.embedded_without_vector),
        "patch_table_stale": report.patch_table_stale,
        "clean": report.clean,
        "repaired": report.repaired,
    }
    click.echo(json.dumps(summary))
    if not report.clean and not repair:
        sys.exit(1)


class BadOption(click.ClickException):
    """An option value that cannot be searched with (an unknown filter value, keywords without
    a word): one line, and exit 2 like any other bad option."""

    exit_code = 2


def _result_json(result: Any) -> dict[str, Any]:
    """A result as JSON, with the words the API and the UI use (``match.labels``)."""
    from ogasearch.match import labels

    return {
        **asdict(result),
        "label": labels.label(result.match, result.edits),
        "edits": labels.ordered_edits(result.edits),
        "score_percent": labels.score_percent(result.match, result.score),
    }


def _result_line(result: Any) -> str:
    """One result in a line: the match in words, its percentage, where it comes from."""
    from ogasearch.match import labels

    source = result.source
    where = source.page_file_name + (f" / {source.archive_path}" if source.archive_path else "")
    tile = f" tile {result.tile}" if result.tile else ""
    tile += f" found at {result.query_box} in the query" if result.query_box else ""
    copies = f" (+{labels.plural(len(result.copies), 'page')})" if result.copies else ""
    more = f" (+{len(result.more)} more from this page)" if result.more else ""
    percent = labels.score_percent(result.match, result.score)
    return (
        f"{'' if percent is None else f'{percent}%':>4} "
        f"{labels.describe(result.match, result.edits)}: #{result.image_id} "
        f"{source.title!r} by {source.author} [{', '.join(source.licenses)}] "
        f"{source.page_url} {where}{tile}{copies}{more}"
    )


@main.command()
@common_options
@click.argument("image", required=False, type=click.Path(exists=True, dir_okay=False))
@click.option("--text", "text_query", help="Keyword query instead of an image.")
@click.option("--similar", type=int, help="Images similar to this catalog image id.")
@click.option("-k", type=click.IntRange(1, 200), default=10, show_default=True)
@click.option("--license", "license_name", help="Only results under this licence (e.g. CC0).")
@click.option("--tiles", type=click.Choice(["only", "exclude"]), help="Only tiles / no tiles.")
@click.option("--art-type", help="Only results of this art type (e.g. '2D Art').")
@click.option("--box", help="Search only this part of IMAGE: x0,y0,x1,y1 in its pixels.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def search(
    settings: Settings,
    image: str | None,
    text_query: str | None,
    similar: int | None,
    k: int,
    license_name: str | None,
    tiles: str | None,
    art_type: str | None,
    box: str | None,
    as_json: bool,
) -> None:
    """Search by IMAGE file, by --text keywords, or --similar ID."""
    from ogasearch.catalog.stats import has_indexed
    from ogasearch.index.terms import words
    from ogasearch.match.labels import plural
    from ogasearch.search.query_image import (
        BadBox,
        QueryImageRejected,
        open_query_image,
        parse_box,
        read_query_file,
    )
    from ogasearch.search.results import Filters, ImageNotFound, UnknownFilter
    from ogasearch.search.service import SearchService

    if sum(x is not None for x in (image, text_query, similar)) != 1:
        raise click.UsageError("give exactly one of IMAGE, --text or --similar")
    if box is not None and image is None:
        raise click.UsageError("--box needs an IMAGE")
    try:
        part = parse_box(box) if box is not None else None
    except BadBox as exc:
        raise BadOption(str(exc)) from None
    if text_query is not None and not words(text_query):
        raise BadOption("--text needs at least one keyword (a word of letters or digits)")
    filters = Filters(license=license_name, tiles=tiles, art_type=art_type)  # type: ignore[arg-type]
    service = SearchService(settings)
    try:
        if not has_indexed(service.ws.engine):
            raise click.ClickException(
                f"nothing is indexed in {service.ws.backends['catalog']}: "
                "run `ogasearch update` first"
            )
        service.check_filters(filters)
        if image is not None:
            try:
                data = read_query_file(Path(image), settings.limits)
                with open_query_image(data, settings.limits) as query:
                    response = service.by_image(query, k, filters, box=part)
            except (QueryImageRejected, BadBox) as exc:
                raise click.ClickException(f"{image}: {exc}") from None
        elif text_query is not None:
            response = service.by_text(text_query, k, filters)
        else:
            try:
                response = service.similar(int(similar), k, filters)  # type: ignore[arg-type]
            except ImageNotFound:
                raise click.ClickException(f"no image with id {similar}") from None
    except UnknownFilter as exc:
        raise BadOption(str(exc)) from None
    finally:
        service.close()
    if as_json:
        results = [_result_json(r) for r in response.results]
        click.echo(
            json.dumps({"results": results, "took_ms": response.took_ms}, default=str, indent=2)
        )
        return
    for r in response.results:
        click.echo(_result_line(r))
    if response.did_you_mean:
        click.echo(f"did you mean: {response.did_you_mean}", err=True)
    found = plural(len(response.results), "result")
    click.echo(f"{found} in {response.took_ms:.1f} ms", err=True)


@main.command()
@common_options
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve(settings: Settings, host: str, port: int) -> None:
    """Serve the web UI and the JSON API (runs fine beside a running ``update``). With no
    catalog yet it still starts, creates nothing, and says the index is empty."""
    from ogasearch.catalog import CatalogMissing
    from ogasearch.web.server import serve as run_server
    from ogasearch.workspace import Workspace

    with Workspace(settings, create=False) as ws:
        try:
            _ = ws.engine  # opened only to say now whether there is a catalog
        except CatalogMissing as exc:
            click.echo(f"warning: {exc}; serving an empty index until then", err=True)
    click.echo(f"ogasearch: http://{host}:{port}/  (API docs: /docs)", err=True)
    run_server(settings, host=host, port=port)


@main.command()
@click.option("--data", type=click.Path(path_type=Path), help="Empty folder (default: a new temp).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, help="Web port [default: 8000, or a free one if taken].")
def demo(data: Path | None, host: str, port: int | None) -> None:
    """Offline demo: local OGA copy (bundled CC0 sample) -> update -> serve."""
    from ogasearch.demo import DemoError, run_demo

    try:
        with _model_errors():
            run_demo(data, host=host, port=port, echo=click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--crawl-delay", type=float, help="Crawl-delay to announce in robots.txt.")
@click.option(
    "--scale-source",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Build a large site from this folder of images (e.g. /usr/share/crawl/dat/tiles).",
)
@click.option("--pages", type=int, help="Pages of the large site.")
def site(
    host: str, port: int, crawl_delay: float | None, scale_source: Path | None, pages: int | None
) -> None:
    """Serve the local copy of OpenGameArt.org used by the tests and the demo."""
    from ogasearch.localsite import main_serve

    main_serve(host, port, crawl_delay, scale_source, pages, echo=click.echo)
