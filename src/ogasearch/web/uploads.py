"""Recent query images of the web UI, kept in memory so result pages can be plain GET links.

An upload is answered with a redirect to ``/?upload=SHA256`` (post/redirect/get), so paging,
filters and the back button work without sending the image again; a fetched image URL is
remembered the same way so that paging does not fetch it again. The cache is bounded in count
and bytes, least recently used first out; an evicted query simply asks for the image again.
Every image in it has passed ``open_image``.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict


class QueryImageCache:
    def __init__(self, max_items: int = 64, max_bytes: int = 128 << 20):
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._images: OrderedDict[str, bytes] = OrderedDict()
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
                _, dropped = self._images.popitem(last=False)
                self._bytes -= len(dropped)
            while len(self._urls) > self.max_items:
                self._urls.popitem(last=False)
        return key

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
