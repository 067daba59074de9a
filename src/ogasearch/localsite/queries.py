"""Labelled keyword queries made from a local site's manifest, for the keyword benchmark and
tests: what people type to find a page, and which pages answer it.

Classes: ``title`` (a title word), ``file`` (a word of an image's file name or archive path),
``tag`` (a whole tag), ``two-word`` (two words of one image's name, else a title word and a
name word), ``plural`` (the two-word query with its second word in the plural) and ``typo``
(the two-word query with two neighbouring letters of one word swapped).

The answer to a query is every page that holds all its clean words (before pluralising or the
typo) in its title, tags, people, description, file names or archive paths. Words here come
from a splitter of this module's own (camelCase, underscores, digits, punctuation), not from the
search code, so the labels do not depend on what they measure.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from ogasearch.localsite.manifest import Manifest, PageRecord

CLASSES = ("title", "file", "tag", "two-word", "plural", "typo")
_SPLIT = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])")  # letters only: numbers are not asked for
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,4}$")
_MIN_LENGTH = 3


@dataclass(frozen=True)
class LabelledQuery:
    kind: str  # one of CLASSES
    text: str  # what is typed
    page: str  # the slug the query was made from
    answers: frozenset[str]  # slugs of every page that holds all the clean words


def split(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters only, camelCase and underscores split)."""
    return [w.lower() for w in _SPLIT.findall(text) if len(w) >= _MIN_LENGTH]


def plural(word: str) -> str:
    if word.endswith(("s", "x", "z", "ch", "sh")):
        return word + "es"
    if word.endswith("y") and word[-2:-1] not in "aeiou":
        return word[:-1] + "ies"
    return word + "s"


def swap(word: str, rng: random.Random) -> str:
    """``word`` with two neighbouring, different letters swapped (never the first letter)."""
    spots = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
    i = rng.choice(spots)
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def _image_names(manifest: Manifest, page: PageRecord) -> list[str]:
    """Each image of the page as ``file name/archive path`` (extensions dropped)."""
    names = []
    for record in manifest.files_of(page.slug):
        if record.expected_state != "done":
            continue
        for image in manifest.images_of(record.url):
            parts = [record.name, *image.archive_path.split("/")]
            names.append(" ".join(_EXTENSION.sub("", p) for p in parts))
    return names


def _page_words(manifest: Manifest, page: PageRecord) -> set[str]:
    people = [page.author, page.submitter, *page.collaborators]
    text = [page.title, page.description, *page.tags, *(p.name for p in people)]
    text += [f.name for f in manifest.files_of(page.slug)]
    text += _image_names(manifest, page)
    return {w for t in text for w in split(t)}


def labelled_queries(manifest: Manifest, per_class: int, seed: int = 0) -> list[LabelledQuery]:
    """Up to ``per_class`` queries of each class, drawn from pages with images."""
    rng = random.Random(seed)
    words = {p.slug: _page_words(manifest, p) for p in manifest.pages}
    pages = [p for p in manifest.pages if _image_names(manifest, p)]
    rng.shuffle(pages)
    found: dict[str, list[LabelledQuery]] = {kind: [] for kind in CLASSES}

    def add(kind: str, page: PageRecord, typed: str, clean: list[str]) -> None:
        if len(found[kind]) >= per_class:
            return
        answers = frozenset(s for s, held in words.items() if set(clean) <= held)
        found[kind].append(LabelledQuery(kind, typed, page.slug, answers))

    for page in pages:
        names = _image_names(manifest, page)
        name = rng.choice(names)
        title_words = split(page.title)
        name_words = list(dict.fromkeys(split(name)))
        if title_words:
            word = rng.choice(title_words)
            add("title", page, word, [word])
        if name_words:
            word = rng.choice(name_words)
            add("file", page, word, [word])
        if page.tags:
            tag = rng.choice(page.tags)
            if split(tag):
                add("tag", page, tag, split(tag))
        if len(name_words) >= 2:
            pair = rng.sample(name_words, 2)
        elif title_words and name_words and title_words[0] != name_words[0]:
            pair = [rng.choice(title_words), name_words[0]]
        else:
            continue
        add("two-word", page, " ".join(pair), pair)
        ordered = sorted(pair, key=lambda w: w.endswith("s"))  # pluralise a singular word
        if not ordered[0].endswith("s"):
            add("plural", page, f"{ordered[1]} {plural(ordered[0])}", pair)
        long_words = [i for i, w in enumerate(pair) if len(w) >= 5 and len(set(w[1:])) > 1]
        if long_words:
            i = rng.choice(long_words)
            typed = [swap(w, rng) if n == i else w for n, w in enumerate(pair)]
            add("typo", page, " ".join(typed), pair)
    return [q for kind in CLASSES for q in found[kind]]
