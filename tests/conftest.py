"""Shared fixtures. Every database test runs once per backend: SQLite always, PostgreSQL too when
TEST_DATABASE_URL is set (CI). Each backend gets a fresh database, migrated with Alembic, dropped
afterwards; tables are emptied between tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

_TMP = Path(tempfile.mkdtemp(prefix="cthainguyen-tests-"))
os.environ.update(
    ENVIRONMENT="test",
    LOG_LEVEL="WARNING",
    SMS_BACKEND="file",
    SMS_FILE_PATH=str(_TMP / "sms.jsonl"),
    RUN_WORKER_IN_PROCESS="false",
    # Cheap argon2 for speed; tests of the production cost set their own.
    PASSWORD_HASH_TIME_COST="1",
    PASSWORD_HASH_MEMORY_KIB="1024",
    PASSWORD_HASH_PARALLELISM="1",
    MEDIA_DIR=str(_TMP / "media"),
)

import httpx  # noqa: E402
import pytest  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from asgi_lifespan import LifespanManager  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncSession  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

from app.core import clock  # noqa: E402
from app.core.config import get_settings  # noqa: E402
from app.core.db import dispose_engine, session_factory  # noqa: E402
from app.main import create_app, import_models  # noqa: E402
from tests.support import databases  # noqa: E402
from tests.support.servers import two_servers  # noqa: E402, F401

KEEP_BETWEEN_TESTS = {"alembic_version", "signing_keys"}


@pytest.fixture(scope="session")
def tmp_root() -> Path:
    return _TMP


@pytest.fixture(scope="session", params=databases.backends())
async def database_url(request: pytest.FixtureRequest, tmp_root: Path) -> AsyncIterator[str]:
    url = await databases.create_database(request.param, tmp_root)
    await databases.migrate(url)
    os.environ["DATABASE_URL"] = url
    get_settings.cache_clear()
    await dispose_engine()
    try:
        yield url
    finally:
        await dispose_engine()
        await databases.drop_database(url)


@pytest.fixture
def backend(database_url: str) -> str:
    return "sqlite" if database_url.startswith("sqlite") else "postgresql"


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[object]:
    application = create_app(run_worker=False)
    async with LifespanManager(application):
        # Start-up hooks may enqueue jobs (camera offline checks...): every test starts empty.
        await _empty_tables()
        yield application


async def _empty_tables() -> None:
    import_models()
    async with session_factory()() as session, session.begin():
        for table in reversed(SQLModel.metadata.sorted_tables):
            if table.name not in KEEP_BETWEEN_TESTS:
                await session.execute(table.delete())


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[AsyncSession]:
    """A session on the test database; tables are emptied after each test."""
    async with session_factory()() as session:
        yield session
    await _empty_tables()


@pytest.fixture
async def client(app: object, db: AsyncSession) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.10", 50000))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def sms_log(tmp_root: Path) -> Iterator[Path]:
    path = tmp_root / "sms.jsonl"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


async def count(session: AsyncSession, model: type[SQLModel]) -> int:
    return (await session.execute(sa.select(sa.func.count()).select_from(model))).scalar_one()
