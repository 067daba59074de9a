"""``ogasearch demo``: the whole product on one machine, offline, in one command.

It reserves its web port first (8000, or any free port when 8000 is taken), then starts the
local copy of OpenGameArt (``ogasearch.localsite``, the bundled CC0 sample) on a free loopback
port, runs the full pipeline against it into a fresh data folder (no crawl delay, every page
checked), and serves the search UI and API over that folder. The local site keeps running
meanwhile, so the "OpenGameArt page" links of the results open, and image-URL queries may reach
it (its ``host:port`` exactly is the one allowed private address, ``allowed_url_hosts``).

The sample holds files that are broken or hostile on purpose (a dead link, a corrupt archive, a
path-traversal member, ...). Which ones is read from the site's manifest (its ground truth), and
the warnings the pipeline logs about them are labelled as deliberate; any other warning is
labelled unexpected.
"""

from __future__ import annotations

import logging
import re
import shlex
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ogasearch.settings import Settings

if TYPE_CHECKING:
    from ogasearch.localsite.manifest import Manifest

DEFAULT_PORT = 8000
Echo = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo cannot start (its port is taken, its data folder is not fresh)."""


def demo_settings(data: Path, site_url: str) -> Settings:
    """Settings for the demo: explicit, so that no OGASEARCH_* variable points it elsewhere.
    Image-URL queries may reach the local site (exactly its host and port), nothing else
    private."""
    return Settings(
        data=data,
        site=site_url,
        catalog=None,
        vectors=None,
        delay=0.0,
        recheck_days=0.0,
        allow_private_urls=False,
        allowed_url_hosts=[urlsplit(site_url).netloc],
    )


def open_port(host: str, port: int | None) -> socket.socket:
    """The web server's socket, bound before any work: ``port``, or with ``None``
    ``DEFAULT_PORT`` and, when that is taken, a free port."""
    from ogasearch.web.server import listening_socket

    try:
        return listening_socket(host, DEFAULT_PORT if port is None else port)
    except OSError as exc:
        if port is not None:
            raise DemoError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}): give another --port,"
                " or leave --port out to take a free one"
            ) from None
    try:
        return listening_socket(host, 0)
    except OSError as exc:
        raise DemoError(f"cannot listen on {host} ({exc.strerror or exc})") from None


def deliberate_faults(manifest: Manifest) -> dict[str, str]:
    """File URL -> what is wrong with it on purpose, from the manifest's expected states."""
    parts: dict[str, list[str]] = {}
    for f in manifest.files:
        if f.expected_state != "done":
            parts.setdefault(f.url, []).append(f"{f.expected_state} ({f.reason})")
    for m in manifest.members:
        if m.expected_state != "ok":
            parts.setdefault(m.file_url, []).append(f"{m.path} {m.expected_state} ({m.reason})")
    return {url: "; ".join(found) for url, found in parts.items()}


def stage_summary(stats: Any) -> str:
    """A stage's stats as words: ``listed 17, listing pages 1, ...`` (nested with ``;``)."""
    if is_dataclass(stats) and not isinstance(stats, type):
        return ", ".join(
            f"{f.name.replace('_', ' ')} {_number(getattr(stats, f.name))}" for f in fields(stats)
        )
    if isinstance(stats, Mapping):
        return "; ".join(f"{key}: {stage_summary(value)}" for key, value in stats.items())
    return _number(stats)


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


_URL = re.compile(r"https?://[^\s'\"]+")


class _FaultLabels(logging.Handler):
    """Prints the pipeline's warnings, each labelled deliberate (it names a file the sample
    breaks on purpose) or unexpected; remembers which deliberate faults showed up."""

    def __init__(self, faults: Mapping[str, str], echo: Echo) -> None:
        super().__init__(logging.WARNING)
        self.faults = faults
        self.echo = echo
        self.seen: set[str] = set()
        self.unexpected = 0

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        named = {url.rstrip(":,;.)") for url in _URL.findall(message)} & self.faults.keys()
        if named:
            self.seen |= named
            self.echo(f"  [deliberate sample fault] {message}")
        else:
            self.unexpected += 1
            self.echo(f"  [unexpected] {message}")


@contextmanager
def _labelled_warnings(faults: Mapping[str, str], echo: Echo) -> Iterator[_FaultLabels]:
    """While the block runs, ``ogasearch`` warnings go to a ``_FaultLabels`` only."""
    logger = logging.getLogger("ogasearch")
    handler = _FaultLabels(faults, echo)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _fresh_folder(data_dir: Path | None) -> Path:
    if data_dir is None:
        return Path(tempfile.mkdtemp(prefix="ogasearch-demo-"))
    if data_dir.exists() and any(data_dir.iterdir()):
        raise DemoError(
            f"{data_dir} is not empty: the demo builds a fresh data folder (its pages point at a"
            " local site on a new port each run); give an empty or new folder"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    return data_dir


def run_demo(
    data_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    echo: Echo = print,
) -> None:
    """Local site -> ``update`` -> ``serve``, until interrupted. ``data_dir`` must be empty or
    absent (None: a new temporary folder, kept afterwards so it can be inspected, removed if the
    demo fails before serving). ``port`` None: 8000, or a free port when 8000 is taken."""
    from ogasearch.localsite.build import build_site
    from ogasearch.localsite.server import serve_site
    from ogasearch.web.server import serve

    with closing(open_port(host, port)) as sock:
        data = _fresh_folder(data_dir)
        serving = False
        try:
            with serve_site(build_site()) as running:
                settings = demo_settings(data, running.base_url)
                _build(settings, running.manifest(), echo)
                _announce(settings, running.manifest(), sock, host, port is None, echo)
                serving = True
                serve(settings, host=host, sock=sock)
        except BaseException:
            if data_dir is None and not serving:
                shutil.rmtree(data, ignore_errors=True)
            raise
    if data_dir is None:
        echo(f"The demo's data folder is kept: {data}  (remove it with: rm -r {_q(data)})")


def _q(path: Path) -> str:
    return shlex.quote(str(path))


def _build(settings: Settings, manifest: Manifest, echo: Echo) -> None:
    """Index the local site into the settings' data folder, saying what happens."""
    from ogasearch.pipeline import update
    from ogasearch.workspace import Workspace

    ws = Workspace(settings)
    ws.check_extractor()  # before anything is said or done
    echo(f"Local OpenGameArt copy ({len(manifest.pages)} pages) at {settings.site_root}/")
    faults = deliberate_faults(manifest)
    names = {f.url: f.name for f in manifest.files}
    echo(
        f"The sample breaks {len(faults)} files on purpose, to show how hostile input is"
        " handled; the warnings about them below are marked [deliberate sample fault]:"
    )
    for url, what in faults.items():
        echo(f"  {names[url]}: {what}")
    echo(f"Building the search index in {settings.data} ...")
    started = time.monotonic()
    with ws, _labelled_warnings(faults, echo) as labels:
        results = update(ws)
    echo(f"Index built in {time.monotonic() - started:.1f} s:")
    for stage, stats in results.items():
        echo(f"  {stage:<9} {stage_summary(stats)}")
    missed = len(faults.keys() - labels.seen)
    echo(
        f"Deliberate faults reported: {len(labels.seen)} of {len(faults)}"
        + (f" ({missed} went unnoticed)" if missed else "")
        + f"; unexpected warnings: {labels.unexpected}."
    )


def _example_image(manifest: Manifest) -> tuple[str, str]:
    """(URL of a plain PNG on the local site, a keyword of its page) for the printed examples."""
    image = next(
        i
        for i in manifest.images
        if i.archive_path == "" and i.format == "PNG" and manifest.file(i.file_url).kind == "file"
    )
    page = manifest.page(manifest.file(image.file_url).page_slug)
    return image.file_url, (page.tags[0] if page.tags else page.title.split()[0])


def _announce(
    settings: Settings,
    manifest: Manifest,
    sock: socket.socket,
    host: str,
    default_port: bool,
    echo: Echo,
) -> None:
    """Where the UI is, a URL query to try, and the CLI commands for the same data folder."""
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
    if default_port and bound != DEFAULT_PORT:
        echo(f"Port {DEFAULT_PORT} is taken: the demo serves on port {bound} instead.")
    echo(f"ogasearch demo: open http://{shown}:{bound}/  (API docs: /docs; Ctrl-C stops)")
    image_url, keyword = _example_image(manifest)
    data = _q(settings.data)
    echo(f"  search by image URL (allowed for the demo's local site only): {image_url}")
    echo("  the same data from the command line (another terminal, the same Python):")
    echo(f"    ogasearch search --data {data} --text {shlex.quote(keyword)}")
    echo(f"    ogasearch search --data {data} path/to/sprite.png")
    echo(f"    ogasearch failures --data {data}   # the deliberate faults, as recorded")
