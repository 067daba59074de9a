"""Settings: command-line options > environment (``OGASEARCH_*``) > config file > defaults.

The config file is TOML, found at ``--config FILE`` / ``OGASEARCH_CONFIG`` or, when neither is
given, ``DATA/ogasearch.toml`` if it exists, where ``DATA`` is the data folder the options or
the environment name (``--data DIR`` finds ``DIR/ogasearch.toml``). Keys are the field names
below; the limits are a ``[limits]`` table. Everything arrives as constructor arguments or is
read from the environment here: no caller passes settings through ``os.environ``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ogasearch import __version__

DEFAULT_SITE = "https://opengameart.org"
DEFAULT_DATA = Path("./ogasearch-data")
CONFIG_NAME = "ogasearch.toml"


class ConfigError(ValueError):
    """The settings cannot be built: a config file that is missing or not TOML, or a value
    (from an option, the environment or the file) that is unknown or of the wrong type."""


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

    # Unknown keys are refused: a misspelt key in the config file must not be silently ignored.
    model_config = SettingsConfigDict(env_prefix="OGASEARCH_", extra="forbid")

    config: Path | None = None  # TOML config file; default DATA/ogasearch.toml if it exists
    data: Path = DEFAULT_DATA
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
    # compact vectors (embed.codec): dimensions kept (x float16 = bytes per vector / 2), and
    # how many full vectors the catalog needs before the codec is fitted on them
    codec_dim: int = 256
    codec_min_vectors: int = 512
    worker_id: str = Field(default_factory=lambda: f"{os.uname().nodename}:{os.getpid()}")
    limits: Limits = Field(default_factory=Limits)
    serving: Serving = Field(default_factory=Serving)
    # Let image-URL queries reach private/loopback addresses. Only for tests against a local
    # server: with it on, the web server can be used to probe the network it runs in.
    allow_private_urls: bool = False
    # Exact "host:port" pairs image-URL queries may reach whatever they resolve to (the demo
    # lists its own local site); everything else keeps the public-address rule.
    allowed_url_hosts: list[str] = Field(default_factory=list)

    @field_validator("allowed_url_hosts")
    @classmethod
    def _host_port_pairs(cls, entries: list[str]) -> list[str]:
        for entry in entries:
            host_port(entry)
        return entries

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        assert isinstance(init_settings, InitSettingsSource)
        env = env_settings()
        # The groups' own variables (OGASEARCH_LIMIT_*, OGASEARCH_SERVE_*) rank with the
        # environment, above the config file's [limits] and [serving] tables: the sources are
        # merged key by key, this one first.
        groups_env = InitSettingsSource(
            settings_cls,
            init_kwargs={
                "limits": EnvSettingsSource(Limits)(),
                "serving": EnvSettingsSource(Serving)(),
            },
        )
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, groups_env]
        config = config_file(init_settings.init_kwargs, env)
        if config is not None:
            sources.append(_toml_source(settings_cls, config))
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


def config_file(init: Mapping[str, Any], env: Mapping[str, Any]) -> Path | None:
    """The config file for these constructor arguments and environment values: ``config``
    (argument, then environment), else ``DATA/ogasearch.toml`` if it exists, with ``DATA``
    from the arguments, then the environment, then the default. An explicit file must exist."""
    explicit = init.get("config") or env.get("config")
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    candidate = Path(init.get("data") or env.get("data") or DEFAULT_DATA) / CONFIG_NAME
    return candidate if candidate.is_file() else None


def _toml_source(settings_cls: type[BaseSettings], path: Path) -> TomlConfigSettingsSource:
    try:
        return TomlConfigSettingsSource(settings_cls, toml_file=path)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def load_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, config file, environment and explicit (CLI) overrides
    (``None`` means not given). Raises ``ConfigError`` with one line saying what is wrong."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid settings: {problems}") from None


def host_port(entry: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 as ``"[::1]:8080"``) -> (host as connections name it, port).

    The port is required: a scheme without a default port keeps ``:80`` from being dropped.
    """
    try:
        parsed = httpx.URL(f"pair://{entry}")
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"not a host:port pair: {entry!r}") from exc
    if not parsed.raw_host or parsed.port is None or parsed.raw_path != b"/":
        raise ValueError(f"not a host:port pair: {entry!r}")
    return parsed.raw_host.decode("ascii"), parsed.port
