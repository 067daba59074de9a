"""The README's first command ends in ``ogasearch demo``: it must serve real results offline."""

from __future__ import annotations

import io
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

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
        assert f"open http://127.0.0.1:{port}/" in log.read_text()
        assert httpx.get(base + "/", timeout=30).status_code == 200

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
