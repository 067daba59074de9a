"""A realistic local copy of OpenGameArt.org served over 127.0.0.1 (tests, benchmarks, demo).

    site = build_site()                      # bundled Kenney CC0 sample, 17 pages
    with serve_site(site) as running:        # background thread, port 0 = any free port
        running.listing_url()                # /art-search-advanced?...&page=0
        running.faults.add(r"^/content/", Fault.error(503, retry_after=1), times=2)
        running.requests()                   # what the crawler asked, with headers
        running.manifest()                   # ground truth a complete crawl should produce

``build_site(scale_source=..., pages=N)`` makes a large site from an external image folder.
"""

from ogasearch.localsite.build import DEFAULT_SCALE_PAGES, build_site
from ogasearch.localsite.faults import Fault, FaultRule, FaultRules, RequestRecord
from ogasearch.localsite.manifest import (
    FileRecord,
    ImageRecord,
    Manifest,
    MemberRecord,
    PageRecord,
    PersonRecord,
    file_url,
)
from ogasearch.localsite.model import LICENCES, FileLink, Licence, Person, Site, SitePage
from ogasearch.localsite.server import RunningSite, main_serve, run_site, serve_site, start_site

__all__ = [
    "DEFAULT_SCALE_PAGES",
    "LICENCES",
    "Fault",
    "FaultRule",
    "FaultRules",
    "FileLink",
    "FileRecord",
    "ImageRecord",
    "Licence",
    "Manifest",
    "MemberRecord",
    "PageRecord",
    "Person",
    "PersonRecord",
    "RequestRecord",
    "RunningSite",
    "Site",
    "SitePage",
    "build_site",
    "file_url",
    "main_serve",
    "run_site",
    "serve_site",
    "start_site",
]
