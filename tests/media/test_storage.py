"""The local storage backend keeps every key inside its root."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.media.storage import LocalStorage


async def test_put_open_delete_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    staged = tmp_path / "upload.part"
    staged.write_bytes(b"%PDF-1.7 bytes")
    await storage.put_file("2027/02/abc.pdf", staged)
    assert not staged.exists()
    assert await storage.exists("2027/02/abc.pdf")
    assert b"".join([chunk async for chunk in storage.open("2027/02/abc.pdf", 4)]) == \
        b"%PDF-1.7 bytes"
    await storage.delete("2027/02/abc.pdf")
    assert not await storage.exists("2027/02/abc.pdf")


@pytest.mark.parametrize("key", ["../outside.pdf", "/etc/passwd", "a/../../b", ""])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="escapes"):
        LocalStorage(tmp_path).path(key)
