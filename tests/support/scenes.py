"""A picture taken as a scene for the tests of pointing at a part of the query: a sprite of
the local site pasted at a known place on a backdrop of flat squares."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ogasearch.localsite.kenney import sprite_bytes
from ogasearch.settings import Settings

ALIEN = "alien/alienBlue_front.png"
ALIEN_PAGE = "alien-blue-player-character"
SIZE = (640, 560)


@dataclass(frozen=True)
class Scene:
    png: bytes
    sprite_box: tuple[int, int, int, int]  # the sprite's opaque pixels in the scene

    def around(self, margin: int) -> tuple[int, int, int, int]:
        x0, y0, x1, y1 = self.sprite_box
        return (x0 - margin, y0 - margin, x1 + margin, y1 + margin)


def alien_scene(at: tuple[int, int] = (300, 110)) -> Scene:
    """The alien at 2x pasted at ``at`` on 12 x 12 squares of random colours (on another
    phase than the sprite's grid, so the backdrop reads as scene, not as art)."""
    sprite = Image.open(io.BytesIO(sprite_bytes(ALIEN))).convert("RGBA")
    big = sprite.resize((sprite.width * 2, sprite.height * 2), Image.Resampling.NEAREST)
    noise = np.random.default_rng(7).integers(0, 256, (48, 55, 3), dtype=np.uint8)
    backdrop = Image.fromarray(noise.repeat(12, 0).repeat(12, 1)).convert("RGBA")
    picture = backdrop.crop((1, 2, 1 + SIZE[0], 2 + SIZE[1]))
    picture.alpha_composite(big, at)
    x0, y0, x1, y1 = big.getchannel("A").getbbox()
    out = io.BytesIO()
    picture.convert("RGB").save(out, "PNG")
    return Scene(out.getvalue(), (at[0] + x0, at[1] + y0, at[0] + x1, at[1] + y1))


def unhurried(settings: Settings) -> Settings:
    """``settings`` with a query deadline long enough for the region path on a busy machine
    (under the default budget a loaded test machine may stop it and answer without it)."""
    limits = settings.limits.model_copy(update={"query_deadline_seconds": 30.0})
    return settings.model_copy(update={"limits": limits})
