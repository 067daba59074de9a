"""``build_site``: the one entry point for making a local site (sample or scale)."""

from __future__ import annotations

from pathlib import Path

from ogasearch.localsite.model import Site
from ogasearch.localsite.sample_site import build_sample_site
from ogasearch.localsite.scale_site import build_scale_site

DEFAULT_SCALE_PAGES = 800  # x (5 tiles + 1 preview) + sheets: about 5,000 images


def build_site(
    *,
    scale_source: str | Path | None = None,
    pages: int | None = None,
    images_per_page: int = 5,
    tile_size: int = 32,
    seed: int = 0,
) -> Site:
    """The bundled sample site, or, with ``scale_source``, a large site cut from that folder.

    Both are deterministic: the same arguments give byte-identical files.
    """
    if scale_source is None:
        if pages is not None:
            raise ValueError("pages= needs scale_source= (the sample site has a fixed size)")
        return build_sample_site()
    return build_scale_site(
        Path(scale_source),
        pages or DEFAULT_SCALE_PAGES,
        images_per_page=images_per_page,
        tile_size=tile_size,
        seed=seed,
    )
