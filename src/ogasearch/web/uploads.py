"""Recent query images of the web UI, kept in memory so result pages can be plain GET links.

An upload is answered with a redirect to ``/?upload=SHA256`` (post/redirect/get), so paging,
filters and the back button work without sending the image again; a fetched image URL is
remembered the same way so that paging does not fetch it again. The cache is bounded in count
and bytes, least recently used first out; an evicted query simply asks for the image again.
Every image in it has passed ``open_image``.

A search by upload costs a core for up to a query's budget, and ``/?upload=SHA`` is a plain
GET that any web page can make a browser send: so an upload is re-run only for the client
that uploaded it (the owner token of a ``SameSite=Strict`` cookie, which other sites' pages
cannot make the browser send) and only for ``replay_seconds`` after its upload.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict

OWNER_COOKIE = "ogasearch_client"


class QueryImageCache:
    def __init__(
        self, max_items: int = 64, max_bytes: int = 128 << 20, replay_seconds: float = 3600.0
    ):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self.replay_seconds = replay_seconds
        self._images: OrderedDict[str, bytes] = OrderedDict()
        # (key, owner) -> when uploaded, oldest first; at most 8 owners per kept image
        self._uploads: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._urls: OrderedDict[str, str] = OrderedDict()  # url -> sha256
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, data: bytes, url: str | None = None) -> str:
        """Keep ``data``; return its key (the SHA-256 of the bytes)."""
        key = hashlib.sha256(data).hexdigest()
        with self._lock:
            if key in self._images:
                self._images.move_to_end(key)
            else:
                self._images[key] = data
                self._bytes += len(data)
            if url is not None:
                self._urls[url] = key
                self._urls.move_to_end(url)
            while self._images and (
                len(self._images) > self.max_items or self._bytes > self.max_bytes
            ):
                gone, dropped = self._images.popitem(last=False)
                self._bytes -= len(dropped)
                for stale in [o for o in self._uploads if o[0] == gone]:
                    del self._uploads[stale]
            while len(self._urls) > self.max_items:
                self._urls.popitem(last=False)
        return key

    def put_upload(self, data: bytes, owner: str) -> str:
        """Keep an upload of ``owner`` (a token from :func:`new_owner`); return its key."""
        key = self.put(data)
        with self._lock:
            if key in self._images:
                self._uploads[(key, owner)] = time.monotonic()
                self._uploads.move_to_end((key, owner))
            while len(self._uploads) > 8 * self.max_items:
                self._uploads.popitem(last=False)
        return key

    def upload(self, key: str, owner: str | None) -> bytes | None:
        """The upload ``key`` if ``owner`` uploaded it within ``replay_seconds``."""
        if not owner:
            return None
        with self._lock:
            when = self._uploads.get((key, owner))
            if when is None or time.monotonic() - when > self.replay_seconds:
                return None
        return self.get(key)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._images.get(key)
            if data is not None:
                self._images.move_to_end(key)
            return data

    def for_url(self, url: str) -> tuple[str, bytes] | None:
        with self._lock:
            key = self._urls.get(url)
            data = self._images.get(key) if key is not None else None
        return (key, data) if key is not None and data is not None else None


def new_owner() -> str:
    """A random owner token for a client's uploads."""
    return secrets.token_urlsafe(18)
