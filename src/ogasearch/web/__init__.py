"""The web application: the JSON API, the search page and the safe image-URL fetcher.

``create_app(settings)`` builds the FastAPI app; ``serve(settings, host, port)`` runs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ogasearch.web.app import create_app
    from ogasearch.web.server import serve

__all__ = ["create_app", "serve"]


def __getattr__(name: str) -> Any:
    # Imported on use: ``import ogasearch.web.safe_fetch`` need not load FastAPI.
    if name == "create_app":
        from ogasearch.web.app import create_app

        return create_app
    if name == "serve":
        from ogasearch.web.server import serve

        return serve
    raise AttributeError(name)
