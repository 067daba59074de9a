"""Crawling OpenGameArt: the only code that knows the site's URLs and markup.

The facts about the site that this package relies on are in ``docs/opengameart.md``.

- ``urls``: URL rules (listing URL, content pages, art files, decoded names, ``rebase``,
  the download counter)
- ``listing``: a listing page -> ``ListingPage``
- ``content``: a content page -> ``ContentPage`` (with ``people`` and ``dates``)
- ``html``: helpers for reading the markup (fields, attributes, text)
- ``http``: ``PoliteClient``, the one HTTP client for the site (robots.txt, delay, retries)
- ``walk``: walking the newest-first listing into ``listed`` pages rows
- ``persist``: writing pages, authors, licences, tags and files rows
- ``stage``: the crawl stage, ``crawl()``: the walk, then the content pages
"""

from ogasearch.crawl.content import ContentPage, FileLink, LicenseRef, parse_content_page
from ogasearch.crawl.http import Downloaded, Fetched, FetchError, PoliteClient, RequestRecord
from ogasearch.crawl.listing import ListingEntry, ListingPage, parse_listing
from ogasearch.crawl.people import Person
from ogasearch.crawl.stage import CrawlStats, crawl
from ogasearch.crawl.urls import file_name_from_url, is_art_file_url, listing_url, rebase

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
