"""Crawling OpenGameArt: the only code that knows the site's URLs and markup.

- ``markup``: listing and content pages -> dataclasses; URL rules (``rebase``, decoded names)
- ``http``: ``PoliteClient``, the one HTTP client for the site (robots.txt, delay, retries)
- ``crawler``: the crawl stage, listing -> ``pages`` rows -> content pages -> ``files`` rows
"""

from ogasearch.crawl.crawler import CrawlStats, crawl
from ogasearch.crawl.http import Downloaded, Fetched, FetchError, PoliteClient, RequestRecord
from ogasearch.crawl.markup import (
    ContentPage,
    FileLink,
    LicenseRef,
    ListingEntry,
    ListingPage,
    Person,
    file_name_from_url,
    is_art_file_url,
    listing_url,
    parse_content_page,
    parse_listing,
    rebase,
)

__all__ = [
    "ContentPage",
    "CrawlStats",
    "Downloaded",
    "FetchError",
    "Fetched",
    "FileLink",
    "LicenseRef",
    "ListingEntry",
    "ListingPage",
    "Person",
    "PoliteClient",
    "RequestRecord",
    "crawl",
    "file_name_from_url",
    "is_art_file_url",
    "listing_url",
    "parse_content_page",
    "parse_listing",
    "rebase",
]
