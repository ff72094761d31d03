"""``Product.media``: each product's images and videos, generated from its own seeded stream.

Product ``p`` has 0–4 media (mostly images, sometimes a video), numbered ``MEDIA_BASE + p*8 + k``;
they are computed when asked for (nothing is stored), so they are the same on every read, in
pages (:func:`~shopsync.simulator.connections.list_connection` cursors) and in bulk exports.
A media item is created with its product and carries the product's ``updatedAt``.
"""

from __future__ import annotations

import random
from typing import Any

from shopsync.simulator.connections import list_connection
from shopsync.simulator.cursors import numeric_id
from shopsync.simulator.data import ID_BASE
from shopsync.simulator.exec_context import ExecContext
from shopsync.simulator.ids import seed_of
from shopsync.simulator.inventory_fields import Special
from shopsync.simulator.plan import PlanField

__all__ = ["MEDIA_SPECIALS", "product_media"]

MEDIA_BASE = 27_000_000_000_000  # + product idx * 8 + k
_MEDIA_SALT = 41


def product_media(seed: int, product: dict) -> list[dict]:
    """The media of ``product`` (a product record), in position order (pure)."""
    p = numeric_id(product["id"]) - ID_BASE["Product"]
    rand = random.Random(seed_of(seed, _MEDIA_SALT, p)).random
    out: list[dict] = []
    for k in range(int(rand() * 5)):
        num = MEDIA_BASE + p * 8 + k
        alt = f"{product['title']} ({k + 1})" if rand() < 0.7 else None
        if rand() < 0.85:
            width, height = (2048, 2048) if rand() < 0.5 else (1600, 1200)
            out.append({
                "__typename": "MediaImage", "id": f"gid://shopify/MediaImage/{num}", "alt": alt,
                "mediaContentType": "IMAGE", "status": "READY", "createdAt": product["createdAt"],
                "updatedAt": product["updatedAt"], "mimeType": "image/jpeg",
                "image": {"url": f"https://cdn.shopify.com/s/files/1/sim/products/{p}-{k}.jpg", "width": width, "height": height},
            })  # fmt: skip
        else:
            out.append({
                "__typename": "Video", "id": f"gid://shopify/Video/{num}", "alt": alt,
                "mediaContentType": "VIDEO", "status": "READY", "createdAt": product["createdAt"],
                "updatedAt": product["updatedAt"], "filename": f"product-{p}-{k}.mp4", "duration": 5_000 + int(rand() * 60_000),
            })  # fmt: skip
    return out


def _media(ctx: ExecContext, rec: dict, args: dict, f: PlanField, path: tuple) -> Any:
    return list_connection(ctx, rec, f, product_media(ctx.store.data.seed, rec))


#: ``(type, field)`` → special; the executor routes those fields here.
MEDIA_SPECIALS: dict[tuple[str, str], Special] = {("Product", "media"): _media}
