"""Keyword search over titles, tags, authors, descriptions, file names and archive paths.

The query is normalised by ``ogasearch.index.terms``, the same code that wrote the index.
Every query word must match (a word also matches the longer words it begins, as one types).
A word the index has never seen, of ``MIN_TYPO_LENGTH`` letters or more, is replaced by the
most common word of the index's own vocabulary one edit away (insert, delete, substitute or
swap two neighbours: Damerau), and the answer says "did you mean".

The full-text index finds the candidate pages (SQLite FTS5 or PostgreSQL ``tsvector`` + GIN,
never a scan); they are ranked here, in Python, by BM25F over the stored fields, ties broken
by page id, so both databases give the same pages in the same order. Tables:
``ogasearch.catalog.fulltext``; writer: ``ogasearch.index.keywords.refresh_keywords``.

A page's card is its image whose file name or archive path shares most query terms
(``card_images``).
"""

from __future__ import annotations

import json
import math
import string
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, func, select, text

from ogasearch.catalog.dialect import is_postgres
from ogasearch.catalog.fulltext import (
    FIELDS,
    STATS_KEY,
    ensure_keyword_index,
    keyword_vocab,
)
from ogasearch.catalog.schema import files, images, meta
from ogasearch.index.base import TileFilter
from ogasearch.index.terms import name_words, stem, words
from ogasearch.match.ranking import (
    FIELD_WEIGHTS,
    K1,
    MAX_CANDIDATES,
    MIN_TYPO_LENGTH,
    PREFIX_WEIGHT,
    B,
)

MAX_WORDS = 20  # query words looked at
_EDIT_LETTERS = string.ascii_lowercase + string.digits


@dataclass(frozen=True)
class KeywordHits:
    """Pages matching a keyword query, best first, and what was searched."""

    pages: list[tuple[int, float]] = field(default_factory=list)  # (page id, score)
    terms: list[str] = field(default_factory=list)  # the searched terms (stems)
    did_you_mean: str | None = None  # the corrected query, when a word was corrected


@dataclass(frozen=True)
class _Corpus:
    pages: int
    avg: dict[str, float]


def search_pages(conn: Connection, query: str, limit: int) -> KeywordHits:
    """Pages matching every word of ``query`` (after typo correction), best first."""
    query_words = words(query)[:MAX_WORDS]
    if not query_words:
        return KeywordHits()
    ensure_keyword_index(conn)
    corpus = _corpus(conn)
    searched: list[str] = []
    frequencies: dict[str, int] = {}
    for word in query_words:
        df = _frequency(conn, stem(word))
        if df == 0 and len(word) >= MIN_TYPO_LENGTH and not word.isdigit():
            corrected = _one_edit(conn, word)
            if corrected is not None:
                word, df = corrected, _frequency(conn, stem(corrected))
        searched.append(word)
        frequencies[stem(word)] = min(df, corpus.pages)
    terms = list(dict.fromkeys(stem(w) for w in searched))
    if any(frequencies[t] == 0 for t in terms):
        return KeywordHits([], terms, _suggestion(query_words, searched))
    idf = {t: _idf(corpus.pages, frequencies[t]) for t in terms}
    scored = sorted(
        (-_score(doc, terms, idf, corpus.avg), page_id)
        for page_id, doc in _candidates(conn, terms).items()
    )
    pages = [(page_id, -negative) for negative, page_id in scored[:limit]]
    return KeywordHits(pages, terms, _suggestion(query_words, searched))


def _idf(pages: int, frequency: int) -> float:
    return math.log(1 + (pages - frequency + 0.5) / (frequency + 0.5))


def _suggestion(typed: list[str], searched: list[str]) -> str | None:
    return " ".join(searched) if searched != typed else None


def _corpus(conn: Connection) -> _Corpus:
    value = conn.execute(select(meta.c.value).where(meta.c.key == STATS_KEY)).scalar()
    stats = json.loads(value) if value else {}
    avg = stats.get("avg", {})
    return _Corpus(int(stats.get("pages", 0)), {f: float(avg.get(f) or 1.0) for f in FIELDS})


def _frequency(conn: Connection, term: str) -> int:
    """How many pages hold ``term`` or a word beginning with it (0: unknown to the index)."""
    total = conn.execute(
        select(func.sum(keyword_vocab.c.pages)).where(keyword_vocab.c.term.startswith(term))
    ).scalar()
    return int(total or 0)


def _edits(word: str) -> set[str]:
    """Every string one Damerau edit away from ``word`` (Norvig's enumeration)."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = {a + b[1:] for a, b in splits if b}
    swaps = {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
    substitutes = {a + c + b[1:] for a, b in splits if b for c in _EDIT_LETTERS}
    inserts = {a + c + b for a, b in splits for c in _EDIT_LETTERS}
    return (deletes | swaps | substitutes | inserts) - {word, ""}


def _one_edit(conn: Connection, word: str) -> str | None:
    """The most common word of the vocabulary (by stem) one edit away from ``word``."""
    stems: dict[str, list[str]] = {}
    for edit in sorted(_edits(word)):
        stems.setdefault(stem(edit), []).append(edit)
    pages: dict[str, int] = {}
    vocabulary: set[str] = set()
    for chunk in _chunks(sorted(stems)):
        rows = conn.execute(
            select(keyword_vocab.c.word, keyword_vocab.c.term, keyword_vocab.c.pages).where(
                keyword_vocab.c.term.in_(chunk)
            )
        )
        for known, term, count in rows:
            pages[term] = pages.get(term, 0) + int(count)
            vocabulary.add(known)
    if not pages:
        return None
    best = min(pages, key=lambda t: (-pages[t], t))
    # Show the edit that is itself a word of the index when there is one.
    return min(stems[best], key=lambda e: (e not in vocabulary, e))


def _candidates(conn: Connection, terms: list[str]) -> dict[int, dict[str, list[str]]]:
    """Stored fields of the pages holding every term (as a word or a word's beginning)."""
    columns = ", ".join(("page_id", *FIELDS))
    if is_postgres(conn):
        query = " & ".join(f"{t}:*" for t in terms)
        matching = "SELECT page_id FROM keyword_fts WHERE document @@ to_tsquery('simple', :q)"
    else:
        query = " AND ".join(f'"{t}"*' for t in terms)
        matching = "SELECT rowid FROM keyword_fts WHERE keyword_fts MATCH :q"
    rows = conn.execute(
        text(
            f"SELECT {columns} FROM keyword_docs WHERE page_id IN ({matching}) "
            "ORDER BY page_id LIMIT :n"
        ),
        {"q": query, "n": MAX_CANDIDATES},
    )
    return {int(row.page_id): {f: row._mapping[f].split() for f in FIELDS} for row in rows}


def _score(
    doc: dict[str, list[str]], terms: list[str], idf: dict[str, float], avg: dict[str, float]
) -> float:
    """BM25F of one page: per term, field-weighted and length-normalised term frequency."""
    total = 0.0
    for term in terms:
        tf = 0.0
        for name in FIELDS:
            found = doc[name]
            hits = sum(1.0 if t == term else PREFIX_WEIGHT for t in found if t.startswith(term))
            if hits:
                tf += FIELD_WEIGHTS[name] * hits / (1 - B + B * len(found) / avg[name])
        total += idf[term] * tf / (K1 + tf)
    return total


def card_images(conn: Connection, hits: KeywordHits, tiles: TileFilter) -> dict[int, int]:
    """Each hit page's image to show: the one whose file name and archive path share most
    query terms; among equals, the page's first (files in page order, whole images first)."""
    page_ids = [page_id for page_id, _ in hits.pages]
    if not page_ids:
        return {}
    query = (
        select(files.c.page_id, images.c.id, files.c.name, images.c.archive_path)
        .join(files, files.c.id == images.c.file_id)
        .where(files.c.page_id.in_(page_ids), files.c.present.is_(True))
        .order_by(
            files.c.page_id,
            images.c.parent_id.is_not(None),
            files.c.kind != "file",
            files.c.position,
            images.c.id,
        )
    )
    if tiles == "only":
        query = query.where(images.c.parent_id.is_not(None))
    elif tiles == "exclude":
        query = query.where(images.c.parent_id.is_(None))
    best: dict[int, tuple[int, int]] = {}  # page id -> (shared terms, image id)
    shared: dict[tuple[str, str], int] = {}
    for page_id, image_id, name, archive_path in conn.execute(query):
        key = (name, archive_path or "")
        if key not in shared:
            named = [stem(w) for w in name_words(f"{name}/{archive_path or ''}")]
            shared[key] = sum(any(t.startswith(q) for t in named) for q in hits.terms)
        score = shared[key]
        if int(page_id) not in best or score > best[int(page_id)][0]:
            best[int(page_id)] = (score, int(image_id))
    return {page_id: image_id for page_id, (_, image_id) in best.items()}


def _chunks(items: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
