"""Searching a part of the query (``box``) and being told where in the query a result was
found (``query_box``), over the JSON API on the local site's data folder."""

from __future__ import annotations

import io
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from ogasearch.localsite.kenney import sprite_bytes
from support.search_data import SearchData, app_client, search_data

ALIEN = "alien/alienBlue_front.png"
ALIEN_PAGE = "alien-blue-player-character"
AT = (300, 110)  # where the sprite is pasted in the scene (at 2x)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def api(data: SearchData) -> Iterator[httpx.Client]:
    yield from app_client(data.settings, timeout=120)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def scene() -> tuple[bytes, tuple[int, int, int, int]]:
    """A backdrop of flat squares (12 x 12, on another phase) with the alien pasted at 2x at
    ``AT``; and the alien's opaque pixels' box in the scene."""
    sprite = Image.open(io.BytesIO(sprite_bytes(ALIEN))).convert("RGBA")
    big = sprite.resize((sprite.width * 2, sprite.height * 2), Image.Resampling.NEAREST)
    noise = np.random.default_rng(7).integers(0, 256, (48, 55, 3), dtype=np.uint8)
    backdrop = Image.fromarray(noise.repeat(12, 0).repeat(12, 1)).convert("RGBA")
    picture = backdrop.crop((1, 2, 641, 562))
    picture.alpha_composite(big, AT)
    x0, y0, x1, y1 = big.getchannel("A").getbbox()
    return _png(picture.convert("RGB")), (AT[0] + x0, AT[1] + y0, AT[0] + x1, AT[1] + y1)


def search(client: httpx.Client, data: bytes, **form: str) -> httpx.Response:
    return client.post(
        "/api/search/image", files={"image": ("q.png", data, "image/png")}, data=form
    )


def _near(box: list[int], want: tuple[int, int, int, int], slack: int) -> bool:
    return max(abs(a - b) for a, b in zip(box, want, strict=True)) <= slack


def test_a_scene_result_says_where_it_was_found(
    api: httpx.Client, data: SearchData, scene: tuple[bytes, tuple[int, int, int, int]]
) -> None:
    picture, where = scene
    response = search(api, picture)
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert first["page_url"] == data.page_url(ALIEN_PAGE)
    assert first["match"] == "region"
    assert first["query_box"] is not None and _near(first["query_box"], where, 3), (
        first["query_box"],
        where,
    )


def test_a_whole_picture_match_has_no_query_box(api: httpx.Client) -> None:
    response = search(api, sprite_bytes(ALIEN))
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert first["match"] == "exact" and first["query_box"] is None


def test_a_box_searches_only_that_part(
    api: httpx.Client, data: SearchData, scene: tuple[bytes, tuple[int, int, int, int]]
) -> None:
    picture, (x0, y0, x1, y1) = scene
    around = (x0 - 10, y0 - 10, x1 + 10, y1 + 10)
    response = search(api, picture, box=",".join(map(str, around)))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    first = results[0]
    assert first["page_url"] == data.page_url(ALIEN_PAGE)
    # told in the whole picture's pixels: the part (the alien fills it: a whole-picture
    # match of the part) or the alien's place in it
    assert _near(first["query_box"], (x0, y0, x1, y1), 3) or first["query_box"] == list(around)
    for hit in [r for card in results for r in (card, *card["more"])]:
        qx0, qy0, qx1, qy1 = hit["query_box"]
        assert around[0] <= qx0 < qx1 <= around[2] and around[1] <= qy0 < qy1 <= around[3]
    # a part of the backdrop without the alien does not find it first
    elsewhere = search(api, picture, box="0,0,280,500")
    assert elsewhere.status_code == 200, elsewhere.text
    found = elsewhere.json()["results"]
    assert not found or found[0]["page_url"] != data.page_url(ALIEN_PAGE)


@pytest.mark.parametrize(
    "box",
    ["0,0,0,10", "10,10,5,20", "-1,0,10,10", "0,0,641,10", "0,0,10,561", "1,2,3", "a,b,c,d"],
)
def test_bad_boxes_are_422(
    api: httpx.Client, scene: tuple[bytes, tuple[int, int, int, int]], box: str
) -> None:
    response = search(api, scene[0], box=box)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "bad_box"
    assert isinstance(body["detail"], str) and "box" in body["detail"]
