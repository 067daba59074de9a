"""Settings: command-line options > environment (``OGASEARCH_*``) > config file > defaults.

The config file is TOML, found at ``--config FILE`` / ``OGASEARCH_CONFIG`` or, when neither is
given, ``<data>/ogasearch.toml`` if it exists. Keys are the field names below.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ogasearch import __version__

DEFAULT_SITE = "https://opengameart.org"


class Limits(BaseSettings):
    """Bounds on untrusted input (archives, images, downloads)."""

    model_config = SettingsConfigDict(env_prefix="OGASEARCH_LIMIT_", extra="ignore")

    max_download_bytes: int = 1 << 30  # one file from the site
    max_archive_members: int = 50_000
    max_archive_total_bytes: int = 4 << 30  # uncompressed bytes in one archive tree
    max_member_bytes: int = 512 << 20  # one member, uncompressed
    max_compression_ratio: float = 200.0  # uncompressed / compressed, checked past ratio_floor
    ratio_floor_bytes: int = 32 << 20  # small archives may compress as well as they like
    max_archive_depth: int = 3  # archive inside archive inside archive
    max_image_pixels: int = 64_000_000  # per frame
    max_image_frames: int = 2_000
    max_tiles_per_sheet: int = 4_096  # tiles cut from one sprite sheet (first in reading order)
    # Search queries (uploads and image URLs) come from anyone who can reach the server.
    max_query_bytes: int = 20 << 20  # an uploaded or fetched query image, encoded
    max_query_pixels: int = 16_000_000  # a query image, decoded (per frame)
    max_query_seconds: float = 15.0  # fetching a query image URL, end to end
    # searching: past this the matcher's optional stages stop and it answers with what it has;
    # past twice this the query fails (503)
    query_deadline_seconds: float = 0.75


class Serving(BaseSettings):
    """How ``ogasearch serve`` shares the machine between clients (see the README)."""

    model_config = SettingsConfigDict(env_prefix="OGASEARCH_SERVE_", extra="ignore")

    query_slots: int = 0  # image queries run at once; 0: one per core
    query_queue: int = 0  # image queries waiting for a slot; 0: as many as slots
    retry_after_seconds: int = 2  # told to a client refused with 503
    header_timeout: float = 10.0  # a request's line and headers must arrive within this
    body_timeout: float = 60.0  # and its body within this
    max_connections: int = 256  # open connections; requests past it are answered 503
    upload_replay_seconds: float = 3600.0  # /?upload= re-runs the uploader's image this long


class Settings(BaseSettings):
    """Everything a command needs to know about where things are and how to behave."""

    model_config = SettingsConfigDict(env_prefix="OGASEARCH_", extra="ignore")

    data: Path = Path("./ogasearch-data")
    site: str = DEFAULT_SITE
    catalog: str | None = None  # SQLAlchemy URL; default sqlite:///<data>/catalog.sqlite
    vectors: str | None = None  # default: in-process index in <data>/vectors
    delay: float = 1.0  # seconds between requests to the site (robots.txt Crawl-delay is a floor)
    timeout: float = 30.0
    retries: int = 4
    user_agent: str = (
        f"ogasearch/{__version__} (+https://github.com/ogasearch/ogasearch; reverse image search)"
    )
    recheck_days: float = 7.0  # re-fetch (conditionally) content pages older than this
    workers: int = 1
    models: Path | None = None  # exported ONNX models; default <data>/models
    extractor: str = "effnet-lite0-128"  # see ogasearch.embed.extractors.available()
    embed_batch: int = 64
    worker_id: str = Field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    limits: Limits = Field(default_factory=Limits)
    serving: Serving = Field(default_factory=Serving)
    # Let image-URL queries reach private/loopback addresses. Only for tests against a local
    # server: with it on, the web server can be used to probe the network it runs in.
    allow_private_urls: bool = False

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config = _config_file()
        if config is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config))
        return tuple(sources)

    @property
    def catalog_url(self) -> str:
        return self.catalog or f"sqlite:///{(self.data / 'catalog.sqlite').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.models or self.data / "models"

    @property
    def store_dir(self) -> Path:
        return self.data / "store"

    @property
    def site_root(self) -> str:
        return self.site.rstrip("/")


def _config_file() -> Path | None:
    explicit = os.environ.get("OGASEARCH_CONFIG")
    if explicit:
        return Path(explicit)
    data = Path(os.environ.get("OGASEARCH_DATA", "./ogasearch-data"))
    candidate = data / "ogasearch.toml"
    return candidate if candidate.is_file() else None


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, config file, environment and explicit (CLI) overrides."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
