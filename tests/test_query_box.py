"""Searching a part of the query (``box``) and being told where in the query a result was
found (``query_box``), over the JSON API on the local site's data folder."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from ogasearch.localsite.kenney import sprite_bytes
from support.scenes import ALIEN, ALIEN_PAGE, SIZE, Scene, alien_scene, unhurried
from support.search_data import SearchData, app_client, search_data


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> SearchData:
    return search_data(tmp_path_factory)


@pytest.fixture(scope="module")
def api(data: SearchData) -> Iterator[httpx.Client]:
    yield from app_client(unhurried(data.settings), timeout=120)


@pytest.fixture(scope="module")
def scene() -> Scene:
    return alien_scene()


def search(client: httpx.Client, data: bytes, **form: str) -> httpx.Response:
    return client.post(
        "/api/search/image", files={"image": ("q.png", data, "image/png")}, data=form
    )


def _near(box: list[int], want: tuple[int, int, int, int], slack: int) -> bool:
    return max(abs(a - b) for a, b in zip(box, want, strict=True)) <= slack


def test_a_scene_result_says_where_it_was_found(
    api: httpx.Client, data: SearchData, scene: Scene
) -> None:
    response = search(api, scene.png)
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert first["page_url"] == data.page_url(ALIEN_PAGE)
    assert first["match"] == "region"
    assert first["query_box"] is not None and _near(first["query_box"], scene.sprite_box, 3), (
        first["query_box"],
        scene.sprite_box,
    )


def test_a_whole_picture_match_has_no_query_box(api: httpx.Client) -> None:
    response = search(api, sprite_bytes(ALIEN))
    assert response.status_code == 200, response.text
    first = response.json()["results"][0]
    assert first["match"] == "exact" and first["query_box"] is None


def test_a_box_searches_only_that_part(api: httpx.Client, data: SearchData, scene: Scene) -> None:
    around = scene.around(10)
    response = search(api, scene.png, box=",".join(map(str, around)))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    first = results[0]
    assert first["page_url"] == data.page_url(ALIEN_PAGE)
    # told in the whole picture's pixels: the part (the alien fills it: a whole-picture
    # match of the part) or the alien's place in it
    assert _near(first["query_box"], scene.sprite_box, 3) or first["query_box"] == list(around)
    for hit in [r for card in results for r in (card, *card["more"])]:
        qx0, qy0, qx1, qy1 = hit["query_box"]
        assert around[0] <= qx0 < qx1 <= around[2] and around[1] <= qy0 < qy1 <= around[3]
    # a part of the backdrop without the alien does not find it first
    elsewhere = search(api, scene.png, box=f"0,0,{scene.sprite_box[0] - 20},{SIZE[1]}")
    assert elsewhere.status_code == 200, elsewhere.text
    found = elsewhere.json()["results"]
    assert not found or found[0]["page_url"] != data.page_url(ALIEN_PAGE)


@pytest.mark.parametrize(
    "box",
    [
        "0,0,0,10",
        "10,10,5,20",
        "-1,0,10,10",
        f"0,0,{SIZE[0] + 1},10",
        f"0,0,10,{SIZE[1] + 1}",
        "1,2,3",
        "a,b,c,d",
    ],
)
def test_bad_boxes_are_422(api: httpx.Client, scene: Scene, box: str) -> None:
    response = search(api, scene.png, box=box)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "bad_box"
    assert isinstance(body["detail"], str) and "box" in body["detail"]
