"""Backends for the storage contract suites.

Each backend is a factory of *unopened* storage objects over one set of files, so a test can open,
close and reopen the same store. Adding a backend (e.g. PostgreSQL) is adding an entry here: a URL
pair in STORAGE_BACKENDS/SINK_BACKENDS, or an in-memory wiring in MEMORY_STORAGE_BACKENDS/
MEMORY_SINK_BACKENDS (no URL, no file: one MemoryDatabase per test stands for the file).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import overload

import asyncpg
import pytest

from shopsync.state.memory import MemoryDatabase, MemorySink, MemoryStateStore
from shopsync.state.open import Storage, make_sink, open_storage
from shopsync.state.sink import Sink
from shopsync.state.store import StateStore

#: The PostgreSQL server the PostgreSQL backends use (each test gets its own schema, dropped after).
PG_URL = os.environ.get("SHOPSYNC_TEST_PG", "postgresql://127.0.0.1:5432/test")
PG = "{pg}"  # placeholder for that test's PostgreSQL URL

# (state database URL, sink URL) relative to tmp_path; None sink means "same as the database".
STORAGE_BACKENDS = {
    "sqlite-shared": ("sqlite:state.db", None),
    "sqlite-separate": ("sqlite:state.db", "sqlite:sink.db"),
    "sqlite+jsonl": ("sqlite:state.db", "jsonl:out"),
    "postgresql-shared": (PG, None),
    "postgresql+jsonl": (PG, "jsonl:out"),
    "sqlite+postgresql": ("sqlite:state.db", PG),
}

# In-memory state store, with its sink on the same MemoryDatabase (None) or at a sink URL.
MEMORY_STORAGE_BACKENDS: dict[str, str | None] = {
    "memory-shared": None,
    "memory+jsonl": "jsonl:out",
}

SINK_BACKENDS = {
    "sqlite": "sqlite:sink.db",
    "jsonl": "jsonl:out",
    "postgresql": PG,
}

MEMORY_SINK_BACKENDS = {"memory"}

# What each sink guarantees about older or identical replays: keyed sinks skip them, append-only
# logs keep every line (the reader resolves newest-wins), so only keyed sinks report ``skipped``.
KEYED_SINKS = {"sqlite", "postgresql", "memory"}


def _run(coro: Awaitable[object]) -> object:
    # Sync fixtures may not touch the test's event loop; a private loop on a thread is safe.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()  # type: ignore[arg-type]


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL into a fresh schema of the test PostgreSQL server; the schema is dropped afterwards.

    An unreachable server is an error, not a skip: the PostgreSQL backends are part of the suite.
    """
    schema = f"shopsync_test_{uuid.uuid4().hex[:12]}"

    async def drop() -> None:
        conn = await asyncpg.connect(PG_URL, timeout=10)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    try:
        _run(drop())
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise RuntimeError(
            f"PostgreSQL test server {PG_URL} is unreachable ({exc}); start it or set SHOPSYNC_TEST_PG"
        ) from exc
    yield f"{PG_URL}?schema={schema}"
    _run(drop())


@overload
def resolve(url: str, request: pytest.FixtureRequest) -> str: ...


@overload
def resolve(url: None, request: pytest.FixtureRequest) -> None: ...


@overload
def resolve(url: str | None, request: pytest.FixtureRequest) -> str | None: ...


def resolve(url: str | None, request: pytest.FixtureRequest) -> str | None:
    """``url`` with the PostgreSQL placeholder replaced (creating the test's schema fixture)."""
    if url is not None and PG in url:
        return url.replace(PG, request.getfixturevalue("pg_url"))
    return url


StorageFactory = Callable[[], Awaitable[Storage]]
SinkFactory = Callable[[], Awaitable[Sink]]


@pytest.fixture(params=sorted(STORAGE_BACKENDS))
def storage_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def storage_urls(storage_backend: str, request: pytest.FixtureRequest) -> tuple[str, str | None]:
    database_url, sink_url = STORAGE_BACKENDS[storage_backend]
    return resolve(database_url, request), resolve(sink_url, request)


@pytest.fixture(params=sorted(STORAGE_BACKENDS) + sorted(MEMORY_STORAGE_BACKENDS))
def contract_backend(request: pytest.FixtureRequest) -> str:
    """Every state store backend: the URL ones (also run by the kill -9 tests) and the in-memory ones."""
    return request.param


async def open_memory_storage(database: MemoryDatabase, sink_url: str | None, base_dir: Path) -> Storage:
    """The in-memory state store on ``database`` with its sink, opened like ``open_storage`` does."""
    sink: Sink
    if sink_url is None:
        sink = MemorySink(database)
    else:
        sink = make_sink(sink_url, base_dir=base_dir, rotate_bytes=4096)
    state: StateStore = MemoryStateStore(database, sink)
    await state.open()
    try:
        await sink.open()
    except BaseException:
        await state.close()
        raise
    return Storage(state=state, sink=sink, shared_transaction=state.shares_transaction)


@pytest.fixture
async def open_store(
    contract_backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[StorageFactory]:
    """A function opening (again) the same storage; everything opened is closed at the end."""
    opened: list[Storage] = []
    memory = MemoryDatabase()

    async def factory() -> Storage:
        if contract_backend in MEMORY_STORAGE_BACKENDS:
            sink_url = resolve(MEMORY_STORAGE_BACKENDS[contract_backend], request)
            storage = await open_memory_storage(memory, sink_url, tmp_path)
        else:
            database_url, sink_url = STORAGE_BACKENDS[contract_backend]
            storage = await open_storage(
                resolve(database_url, request),
                resolve(sink_url, request),
                base_dir=tmp_path,
                rotate_bytes=4096,
            )
        opened.append(storage)
        return storage

    yield factory
    for storage in opened:
        await storage.close()


@pytest.fixture
async def store(open_store: StorageFactory) -> Storage:
    return await open_store()


@pytest.fixture(params=sorted(SINK_BACKENDS) + sorted(MEMORY_SINK_BACKENDS))
def sink_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def sink_url(sink_backend: str, request: pytest.FixtureRequest) -> str | None:
    """The sink's URL; None for an in-memory sink."""
    if sink_backend in MEMORY_SINK_BACKENDS:
        return None
    return resolve(SINK_BACKENDS[sink_backend], request)


@pytest.fixture
async def open_sink_again(sink_url: str | None, tmp_path: Path) -> AsyncIterator[SinkFactory]:
    opened: list[Sink] = []
    memory = MemoryDatabase()

    async def factory() -> Sink:
        sink: Sink
        if sink_url is None:
            sink = MemorySink(memory)
        else:
            sink = make_sink(sink_url, base_dir=tmp_path, rotate_bytes=4096)
        await sink.open()
        opened.append(sink)
        return sink

    yield factory
    for sink in opened:
        await sink.close()


@pytest.fixture
async def sink(open_sink_again: SinkFactory) -> Sink:
    return await open_sink_again()
