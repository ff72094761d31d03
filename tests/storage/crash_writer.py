"""Subprocess for the kill -9 tests: commits pages of records forever, acknowledging each.

Usage: ``python crash_writer.py DATABASE_URL SINK_URL BASE_DIR``. It resumes after the page its
checkpoint names, commits page after page (each a new cursor and PAGE records), and after each
commit returns prints ``ACK <page>`` to stdout. The parent kills it at a random moment with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from shopsync import crashpoints
from shopsync.state import Record, StreamState
from shopsync.state.open import open_storage

PAGE = 25
SHOP, RESOURCE = "acme", "orders"


def record_id(n: int) -> str:
    return f"gid://shopify/Order/{n}"


def page_records(page: int) -> list[Record]:
    ts = f"2026-01-01T{page // 3600 % 24:02d}:{page // 60 % 60:02d}:{page % 60:02d}Z"
    return [
        Record(
            shop=SHOP,
            resource=RESOURCE,
            id=record_id(n),
            updated_at=ts,
            data={"id": record_id(n), "updatedAt": ts, "page": page, "note": "x" * 200},
        )
        for n in range(page * PAGE, (page + 1) * PAGE)
    ]


def page_of_cursor(cursor: str | None) -> int:
    """The page a cursor names (-1: nothing committed yet)."""
    return -1 if cursor is None else int(cursor.removeprefix("page-"))


async def main(database_url: str, sink_url: str, base_dir: str) -> None:
    storage = await open_storage(
        database_url, sink_url or None, base_dir=Path(base_dir), rotate_bytes=16 * 1024
    )
    state = await storage.state.get_stream(SHOP, RESOURCE) or StreamState(shop=SHOP, resource=RESOURCE)
    page = page_of_cursor(state.cursor) + 1
    while True:
        state = state.with_page(f"page-{page}", PAGE)
        await storage.commit(state, page_records(page))
        os.write(1, f"ACK {page}\n".encode())  # unbuffered: an ACK is out the moment it is printed
        page += 1


if __name__ == "__main__":
    crashpoints.arm_from_environment(os.environ)  # the parent's SHOPSYNC_CRASHPOINT, if any
    asyncio.run(main(*sys.argv[1:4]))
