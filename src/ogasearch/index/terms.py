"""What a keyword is: the one normalisation of text that both writes and queries the keyword
index.

``words`` splits text the way people read file names and titles: on punctuation, spaces and
underscores, between camelCase parts (``slimeBlue`` -> ``slime blue``, ``HTMLParser`` ->
``html parser``) and between letters and digits (``tile32x32`` -> ``tile 32 x 32``); it
lower-cases, drops diacritics and leading zeros of numbers. ``stem`` reduces a word to its
Snowball (Porter 2) English stem, so plurals and other inflections meet (``idles`` and
``idle`` -> ``idl``). ``terms`` is both.

The writer (``ogasearch.index.keywords``) hands the databases these already-normalised terms,
so SQLite and PostgreSQL index, match and rank exactly the same tokens.
"""

from __future__ import annotations

import re
import threading
import unicodedata

import Stemmer

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits
_PARTS = re.compile(
    r"(?<=[a-z])(?=[A-Z])"  # slime|Blue
    r"|(?<=[A-Z])(?=[A-Z][a-z])"  # HTML|Parser
    r"|(?<=\d)(?=\D)|(?<=\D)(?=\d)"  # tile|32|x|32
)
# Extensions dropped from file names and archive paths: every page has "png" or "zip".
_EXTENSION = re.compile(
    r"\.(png|gif|jpe?g|bmp|webp|zip|7z|rar|tar|gz|tgz|bz2|tbz2|xz)$", re.IGNORECASE
)
_local = threading.local()  # a PyStemmer Stemmer is not thread-safe: one per thread


def words(text: str) -> list[str]:
    """The lower-case words of ``text``, split at camelCase, letter/digit and punctuation."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    out: list[str] = []
    for run in _WORD.findall(plain):
        for part in _PARTS.split(run):
            if part.isdigit():
                part = part.lstrip("0") or "0"
            if part:
                out.append(part.lower())
    return out


def name_words(path: str) -> list[str]:
    """The words of a file name or archive member path, file extensions left out."""
    segments = (_EXTENSION.sub("", s) for s in path.split("/"))
    return words(" ".join(segments))


def stem(word: str) -> str:
    """The Snowball English stem of one word from ``words``."""
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return str(stemmer.stemWord(word))


def terms(text: str) -> list[str]:
    """The index terms of ``text``: its words, stemmed."""
    return [stem(w) for w in words(text)]
