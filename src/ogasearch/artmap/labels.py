"""Region labels: the map's points clustered per zoom band, each cluster named by the words
of its pages' titles and tags that are most particular to it (tf-idf over clusters).

Words are ``index.terms.words`` (the keyword index's split, unstemmed so they read as
written); numbers, one- and two-letter words and words on nearly every page are left out.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from sklearn.cluster import MiniBatchKMeans
from sqlalchemy import Engine, select

from ogasearch.artmap.info import Label
from ogasearch.catalog.schema import files, images, page_tags, pages, tags
from ogasearch.index.terms import words

LABELS_PER_TILE = 0.75  # about this many labels per 256-pixel tile at each zoom
MAX_LABEL_ZOOM = 5  # deeper zooms show the labels of this one
MIN_CLUSTER = 3  # smaller clusters get no label
COMMON_SHARE = 0.8  # a word on more of the pages than this names no region
WORDS_PER_LABEL = 2
COMMON = frozenset({"and", "the", "for", "with", "set", "pack", "art", "free", "png", "by"})
BATCH = 5_000


def page_words(engine: Engine, image_ids: list[int]) -> dict[int, set[str]]:
    """The words of each image's page: its title and its tags."""
    out: dict[int, set[str]] = {i: set() for i in image_ids}
    with engine.connect() as conn:
        for start in range(0, len(image_ids), BATCH):
            chunk = image_ids[start : start + BATCH]
            page_of = (
                select(images.c.id, files.c.page_id)
                .join(files, files.c.id == images.c.file_id)
                .where(images.c.id.in_(chunk))
                .subquery()
            )
            for image_id, title in conn.execute(
                select(page_of.c.id, pages.c.title).join(pages, pages.c.id == page_of.c.page_id)
            ):
                out[int(image_id)].update(_keep(title or ""))
            for image_id, tag in conn.execute(
                select(page_of.c.id, tags.c.name)
                .join(page_tags, page_tags.c.page_id == page_of.c.page_id)
                .join(tags, tags.c.id == page_tags.c.tag_id)
            ):
                out[int(image_id)].update(_keep(tag))
    return out


def _keep(text: str) -> list[str]:
    return [w for w in words(text) if len(w) > 2 and not w.isdigit() and w not in COMMON]


def region_labels(
    xy: np.ndarray, ids: list[int], vocab: dict[int, set[str]], max_zoom: int, seed: int = 0
) -> list[Label]:
    """Labels for zooms 0 .. min(max_zoom, MAX_LABEL_ZOOM), each zoom its own clusters."""
    n = len(ids)
    df: Counter[str] = Counter()
    for i in ids:
        df.update(vocab.get(i, ()))
    out: list[Label] = []
    for zoom in range(min(max_zoom, MAX_LABEL_ZOOM) + 1):
        k = min(max(2, round(LABELS_PER_TILE * 4**zoom)), n // MIN_CLUSTER)
        if k < 2:
            break
        clusters = MiniBatchKMeans(n_clusters=k, random_state=seed, n_init=3, batch_size=4096)
        assignment = clusters.fit_predict(xy)
        for c in range(k):
            members = np.flatnonzero(assignment == c)
            if len(members) < MIN_CLUSTER:
                continue
            text = _name([vocab.get(ids[m], set()) for m in members], df, n)
            if text:
                cx, cy = xy[members].mean(axis=0)
                out.append(Label(zoom, float(cx), float(cy), text, len(members)))
    return out


def _name(member_words: list[set[str]], df: Counter[str], n: int) -> str:
    """The cluster's most particular words: share of its images x log(n / df)."""
    tf: Counter[str] = Counter()
    for found in member_words:
        tf.update(found)
    size = len(member_words)
    scored = sorted(
        ((count / size) * math.log(n / df[w]), w)
        for w, count in tf.items()
        if count >= 2 and df[w] < COMMON_SHARE * n
    )
    best = [w for _score, w in reversed(scored[-WORDS_PER_LABEL:])]
    return " · ".join(best)
