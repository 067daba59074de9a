"""The catalog: the SQL database that holds pages, files, members, images and stage state."""

from ogasearch.catalog.claims import claim
from ogasearch.catalog.db import CatalogError, open_catalog, record_failure, utcnow

__all__ = ["CatalogError", "claim", "open_catalog", "record_failure", "utcnow"]
