"""The catalog: the SQL database that holds pages, files, members, images and stage state."""

from ogasearch.catalog.claims import claim
from ogasearch.catalog.db import (
    CatalogError,
    CatalogMissing,
    masked_url,
    open_catalog,
    record_failure,
    utcnow,
)

__all__ = [
    "CatalogError",
    "CatalogMissing",
    "claim",
    "masked_url",
    "open_catalog",
    "record_failure",
    "utcnow",
]
