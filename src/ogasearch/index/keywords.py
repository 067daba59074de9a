"""Writing the keyword index: each fetched page's title, tags, authors, description, file names
and archive member paths, normalised once by ``ogasearch.index.terms``.

``refresh_keywords`` keeps the index in step with the catalog: it recomputes each page's
document and rewrites only the pages whose document changed, then the vocabulary and the
corpus statistics, so it is cheap to run after every crawl and safe to kill (one
transaction). An index stored in an older format (``KEYWORD_FORMAT``) is rebuilt from the
catalog by the same call, so the next ``update`` upgrades an existing data folder with no
re-crawl. The tables are ``ogasearch.catalog.fulltext``'s; the query side is
``ogasearch.search.keywords``.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, delete, insert, select, text, update

from ogasearch.catalog.dialect import is_postgres
from ogasearch.catalog.fulltext import (
    FIELDS,
    KEYWORD_FORMAT,
    STATS_KEY,
    ensure_keyword_index,
    keyword_docs,
    keyword_vocab,
    rebuild_keyword_index,
    stored_format,
)
from ogasearch.catalog.locks import serialise
from ogasearch.catalog.schema import (
    authors,
    files,
    members,
    meta,
    page_authors,
    page_tags,
    pages,
    tags,
)
from ogasearch.index.terms import name_words, stem, words


@dataclass
class KeywordStats:
    pages: int = 0
    updated: int = 0
    removed: int = 0
    words: int = 0  # size of the vocabulary
    rebuilt: bool = False  # the stored index was of an older format


@dataclass(frozen=True)
class Document:
    """One page's words by field (what the vocabulary counts) and its terms (what is
    indexed)."""

    words: dict[str, list[str]]

    def terms(self) -> dict[str, str]:
        return {f: " ".join(stem(w) for w in self.words[f]) for f in FIELDS}


def _raw_fields(conn: Connection) -> dict[int, dict[str, list[str]]]:
    """Each fetched page's searchable text, by field (file fields: names and member paths)."""
    raw: dict[int, dict[str, list[str]]] = {}
    for row in conn.execute(
        select(pages.c.id, pages.c.title, pages.c.description).where(pages.c.state == "fetched")
    ):
        raw[row.id] = {"title": [row.title or ""], "description": [row.description or ""]}
    grouped: dict[str, dict[int, list[str]]] = {f: defaultdict(list) for f in FIELDS}
    for page_id, name in conn.execute(
        select(page_tags.c.page_id, tags.c.name)
        .join(tags, tags.c.id == page_tags.c.tag_id)
        .order_by(page_tags.c.page_id, page_tags.c.position)
    ):
        grouped["tags"][page_id].append(name)
    for page_id, name in conn.execute(
        select(page_authors.c.page_id, authors.c.name)
        .join(authors, authors.c.id == page_authors.c.author_id)
        .order_by(page_authors.c.page_id, page_authors.c.position)
    ):
        grouped["authors"][page_id].append(name)
    for page_id, name in conn.execute(
        select(files.c.page_id, files.c.name).where(files.c.present.is_(True)).order_by(files.c.id)
    ):
        grouped["files"][page_id].append(name)
    for page_id, path in conn.execute(
        select(files.c.page_id, members.c.path)
        .join(files, files.c.id == members.c.file_id)
        .where(members.c.kind == "image", files.c.present.is_(True))
        .order_by(members.c.id)
    ):
        grouped["files"][page_id].append(path)
    for page_id, fields in raw.items():
        for name in ("tags", "authors", "files"):
            fields[name] = grouped[name].get(page_id, [])
    return raw


def _documents(conn: Connection) -> dict[int, Document]:
    out: dict[int, Document] = {}
    for page_id, fields in _raw_fields(conn).items():
        split = {f: [w for value in fields[f] for w in words(value)] for f in FIELDS}
        split["files"] = [w for value in fields["files"] for w in name_words(value)]
        out[page_id] = Document(split)
    return out


def _sha(terms: dict[str, str]) -> str:
    return hashlib.sha256("\x1f".join(terms[f] for f in FIELDS).encode()).hexdigest()


def refresh_keywords(engine: Engine) -> KeywordStats:
    """Bring the keyword index in step with the catalog (one transaction)."""
    stats = KeywordStats()
    with engine.begin() as conn:
        serialise(conn, "keywords.refresh")  # one worker at a time rewrites the index
        if stored_format(conn) != KEYWORD_FORMAT:
            rebuild_keyword_index(conn)
            stats.rebuilt = True
        ensure_keyword_index(conn)
        docs = _documents(conn)
        stats.pages = len(docs)
        known: dict[int, str] = {
            int(pid): sha
            for pid, sha in conn.execute(select(keyword_docs.c.page_id, keyword_docs.c.sha256))
        }
        for page_id in set(known) - set(docs):
            _delete(conn, page_id)
            stats.removed += 1
        lengths: Counter[str] = Counter()
        for page_id, doc in docs.items():
            terms = doc.terms()
            lengths.update({f: len(doc.words[f]) for f in FIELDS})
            sha = _sha(terms)
            if known.get(page_id) == sha:
                continue
            _delete(conn, page_id)
            _insert(conn, page_id, sha, terms)
            stats.updated += 1
        stats.words = _write_vocabulary(conn, docs.values())
        corpus = {"pages": len(docs), "avg": {f: lengths[f] / max(1, len(docs)) for f in FIELDS}}
        conn.execute(delete(meta).where(meta.c.key == STATS_KEY))
        conn.execute(insert(meta).values(key=STATS_KEY, value=json.dumps(corpus)))
    return stats


def _write_vocabulary(conn: Connection, docs: Iterable[Document]) -> int:
    """Rewrite the changed rows of ``keyword_vocab``: each word, its stem, its page count."""
    counts: Counter[str] = Counter()
    for doc in docs:
        counts.update({w for field in doc.words.values() for w in field})
    rows = conn.execute(select(keyword_vocab.c.word, keyword_vocab.c.pages))
    stored = {word: int(n) for word, n in rows}
    gone = [w for w in stored if w not in counts]
    for start in range(0, len(gone), 500):
        chunk = gone[start : start + 500]
        conn.execute(delete(keyword_vocab).where(keyword_vocab.c.word.in_(chunk)))
    added = [{"word": w, "term": stem(w), "pages": n} for w, n in counts.items() if w not in stored]
    if added:
        conn.execute(insert(keyword_vocab), added)
    for word, n in counts.items():
        if word in stored and stored[word] != n:
            conn.execute(update(keyword_vocab).where(keyword_vocab.c.word == word).values(pages=n))
    return len(counts)


def _delete(conn: Connection, page_id: int) -> None:
    conn.execute(delete(keyword_docs).where(keyword_docs.c.page_id == page_id))
    key = "page_id" if is_postgres(conn) else "rowid"
    conn.execute(text(f"DELETE FROM keyword_fts WHERE {key} = :id"), {"id": page_id})


def _insert(conn: Connection, page_id: int, sha: str, terms: dict[str, str]) -> None:
    conn.execute(insert(keyword_docs).values(page_id=page_id, sha256=sha, **terms))
    document = " ".join(terms[f] for f in FIELDS)
    if is_postgres(conn):
        statement = (
            "INSERT INTO keyword_fts (page_id, document) VALUES (:id, to_tsvector('simple', :doc))"
        )
    else:
        statement = "INSERT INTO keyword_fts (rowid, document) VALUES (:id, :doc)"
    conn.execute(text(statement), {"id": page_id, "doc": document})
