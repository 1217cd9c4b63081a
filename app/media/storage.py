"""Where file bytes live: the local disk under MEDIA_DIR, or S3-compatible storage (`s3.py`,
MEDIA_STORAGE=s3). Uploads are first streamed to a local staging file, then handed to the
backend."""

from __future__ import annotations

import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from pathlib import Path

import anyio

from app.media.config import get_media_settings

CHUNK = 64 * 1024


class StorageBackend(ABC):
    name: str

    @abstractmethod
    async def put_file(self, key: str, staged: Path) -> None:
        """Take ownership of a fully written staging file (moved or uploaded, then removed)."""

    @abstractmethod
    def open(self, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        """Stream the stored bytes."""

    @abstractmethod
    async def delete(self, key: str) -> None: ...

    @abstractmethod
    async def exists(self, key: str) -> bool: ...


class LocalStorage(StorageBackend):
    """Files under MEDIA_DIR; keys are relative paths that never leave the root."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        target = (self.root / key).resolve()
        if not target.is_relative_to(self.root) or target == self.root:
            raise ValueError(f"storage key escapes the media root: {key!r}")
        return target

    async def put_file(self, key: str, staged: Path) -> None:
        """Durable when it returns: the caller's transaction, which records the file, commits
        after this, so a power cut must not leave a row whose file never reached the disk (and
        the kernel's late writeback of unsynced files can stall the database's own flushes)."""
        target = self.path(key)

        def move() -> None:
            created = [
                d
                for d in (target.parent, *target.parent.parents)
                if d.is_relative_to(self.root) and not d.exists()
            ]
            target.parent.mkdir(parents=True, exist_ok=True)
            _fsync(staged)
            # Staging lives under the root, so this is an atomic rename (a copy only across
            # filesystems: then the copy is flushed too).
            renamed = staged.stat().st_dev == target.parent.stat().st_dev
            shutil.move(staged, target)
            if not renamed:
                _fsync(target)
            # The new name, and the names of the directories made for it.
            for directory in {target.parent, *(d.parent for d in created)}:
                _fsync(directory)

        await anyio.to_thread.run_sync(move)

    async def open(self, key: str, chunk_size: int = CHUNK) -> AsyncIterator[bytes]:
        async with await anyio.open_file(self.path(key), "rb") as handle:
            while chunk := await handle.read(chunk_size):
                yield chunk

    async def delete(self, key: str) -> None:
        await anyio.Path(self.path(key)).unlink(missing_ok=True)

    async def exists(self, key: str) -> bool:
        return await anyio.Path(self.path(key)).is_file()


def _fsync(path: Path) -> None:
    """Flush a file's data, or a directory's entries, to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def staging_dir() -> Path:
    path = get_media_settings().media_dir / "staging"
    path.mkdir(parents=True, exist_ok=True)
    return path


def new_staging_path() -> Path:
    return staging_dir() / f"{uuid.uuid4().hex}.part"


_backend: StorageBackend | None = None


def get_storage() -> StorageBackend:
    global _backend
    settings = get_media_settings()
    if settings.media_storage == "s3":
        # S3-compatible object storage (app/media/s3.py), chosen with MEDIA_STORAGE=s3.
        if _backend is None or _backend.name != "s3":
            from app.media.s3 import S3Storage

            _backend = S3Storage.from_settings(settings)
        return _backend
    if not isinstance(_backend, LocalStorage) or _backend.root != settings.media_dir.resolve():
        _backend = LocalStorage(settings.media_dir)
    return _backend
