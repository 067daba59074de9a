"""``ogasearch search`` speaks the words of the API and the UI (``match.labels``), shows the
file name the page shows, refuses query images and filter values as the API does, in one line.

Runs on the data folder the real pipeline built from the local site (``support``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ogasearch.cli import main
from ogasearch.localsite.kenney import sprite_bytes
from ogasearch.search.query_image import EMPTY
from support.search_data import SearchData, search_data

BEE = "enemies/bee.png"  # in gfx_3.zip, which its page calls gfx.zip


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def bee(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("query") / "bee.png"
    path.write_bytes(sprite_bytes(BEE))
    return path


def search(data: SearchData, *args: str) -> Result:
    return CliRunner().invoke(main, ["search", "--data", str(data.settings.data), *args])


def test_results_in_plain_words_with_the_pages_file_name(data: SearchData, bee: Path) -> None:
    result = search(data, str(bee), "-k", "40")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("     exact copy: #")  # no percentage for an exact copy
    assert "'Enemy sprites'" in lines[0]
    assert " gfx.zip / enemies/bee.png" in lines[0] and "gfx_3.zip /" not in lines[0]
    assert any("edited copy (recoloured): #" in line for line in lines)
    similar = [line for line in lines if " similar: #" in line]
    assert similar and all(line[:4].strip().endswith("%") for line in similar)
    words = r"(exact copy|edited copy( \([a-z, -]+\))?|found in your picture|similar): #"
    assert all(re.match(r"^[ \d]{3}[ %] " + words, line) for line in lines), lines
    # one result per page: the sample site has fewer than 40 pages
    assert len(lines) >= 10 and result.stderr.startswith(f"{len(lines)} results in ")
    assert any(" more from this page)" in line for line in lines)


def test_one_result_is_singular(data: SearchData, bee: Path) -> None:
    result = search(data, str(bee), "-k", "1")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("1 result in ")


def test_json_carries_the_api_words(data: SearchData, bee: Path) -> None:
    result = search(data, str(bee), "-k", "5", "--json")
    assert result.exit_code == 0, result.output
    best = json.loads(result.stdout)["results"][0]
    assert (best["match"], best["label"], best["edits"]) == ("exact", "exact copy", [])
    assert best["score_percent"] is None
    assert (best["source"]["file_name"], best["source"]["page_file_name"]) == (
        "gfx_3.zip",
        "gfx.zip",
    )


def test_an_empty_file_is_refused_in_the_apis_words(data: SearchData, tmp_path: Path) -> None:
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    result = search(data, str(empty))
    assert result.exit_code == 1
    assert result.stderr == f"Error: {empty}: {EMPTY}\n"


@pytest.mark.parametrize(
    ("option", "value", "valid"),
    [("--license", "bogus", "'CC0'"), ("--art-type", "pixel", "'2D Art'")],
)
def test_unknown_filter_values_are_one_line_and_exit_2(
    data: SearchData, bee: Path, option: str, value: str, valid: str
) -> None:
    result = search(data, str(bee), option, value)
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert f"unknown {option[2:].replace('-', '_')} {value!r}; valid: " in line
    assert valid in line
    assert result.stdout == ""


def test_empty_keywords_are_a_usage_error(data: SearchData) -> None:
    for text in ("", "   "):
        result = search(data, "--text", text)
        assert result.exit_code == 2
        assert "--text needs at least one keyword" in result.stderr


def test_box_searches_a_part_and_says_where(data: SearchData, tmp_path: Path) -> None:
    from support.scenes import ALIEN_PAGE, alien_scene

    scene = alien_scene()
    picture = tmp_path / "scene.png"
    picture.write_bytes(scene.png)
    around = ",".join(map(str, scene.around(10)))
    result = search(data, str(picture), "--box", around, "--json")
    assert result.exit_code == 0, result.output
    first = json.loads(result.stdout)["results"][0]
    assert first["source"]["page_url"] == data.page_url(ALIEN_PAGE)
    x0, y0, x1, y1 = first["query_box"]
    a0, b0, a1, b1 = scene.around(10)
    assert a0 <= x0 < x1 <= a1 and b0 <= y0 < y1 <= b1
    lines = search(data, str(picture), "--box", around, "-k", "1").stdout.splitlines()
    assert lines and " found at (" in lines[0]


@pytest.mark.parametrize(("box", "code"), [("1,2,3", 2), ("0,0,9999,10", 1)])
def test_a_bad_box_is_one_line(data: SearchData, bee: Path, box: str, code: int) -> None:
    result = search(data, str(bee), "--box", box)
    assert result.exit_code == code, result.output
    assert "box" in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) <= 3  # click's usage lines at most
