"""One card per page: results that come from the same OpenGameArt page folded into one.

A sheet cut into hundreds of tiles would otherwise fill a result list with its own tiles (24
cards of ice tiles for one alien sprite), each card repeating the same page. Results are
folded by the page of their best occurrence (``SearchResult.source``): the best-ranked result
of a page is its card, and the page's other results follow it in ``more``, best first. So the
first ``k`` cards are ``k`` distinct pages whenever the results hold them.

Pure functions over ``SearchResult``; the service widens its neighbour pool until it has
``k`` cards or its pool bound (``search.service``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ogasearch.search.results import SearchResult


def card_key(result: SearchResult) -> int:
    """The page a result belongs to: the page of its best occurrence."""
    return result.source.page_id


def one_card_per_page(results: Sequence[SearchResult], k: int) -> list[SearchResult]:
    """Up to ``k`` cards in result order, one per page: the page's best result, with its
    other results (every one in ``results``, also past the ``k``-th card) in ``more``."""
    cards: dict[int, SearchResult] = {}
    for result in results:
        key = card_key(result)
        card = cards.get(key)
        if card is not None:
            card.more.append(result)
        elif len(cards) < k:
            cards[key] = result
    return list(cards.values())
