"""The local storage backend keeps every key inside its root, and a stored file on the disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from app.media import storage as storage_module
from app.media.storage import LocalStorage


async def test_put_open_delete_round_trip(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "media")
    staged = tmp_path / "upload.part"
    staged.write_bytes(b"%PDF-1.7 bytes")
    await storage.put_file("2027/02/abc.pdf", staged)
    assert not staged.exists()
    assert await storage.exists("2027/02/abc.pdf")
    assert (
        b"".join([chunk async for chunk in storage.open("2027/02/abc.pdf", 4)]) == b"%PDF-1.7 bytes"
    )
    await storage.delete("2027/02/abc.pdf")
    assert not await storage.exists("2027/02/abc.pdf")


@pytest.mark.parametrize("key", ["../outside.pdf", "/etc/passwd", "a/../../b", ""])
def test_keys_cannot_escape_the_root(tmp_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="escapes"):
        LocalStorage(tmp_path).path(key)


async def test_a_stored_file_and_its_new_directories_are_flushed_before_put_returns(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "media"
    (root / "staging").mkdir(parents=True)
    staged = root / "staging" / "x.part"
    staged.write_bytes(b"\xff\xd8 picture")
    flushed: list[Path] = []
    real_fsync = os.fsync

    def fsync(descriptor: int) -> None:
        flushed.append(Path(os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    monkeypatch.setattr(storage_module.os, "fsync", fsync)
    await LocalStorage(root).put_file("2027/02/abc.jpg", staged)

    # The data before its name, then the directory holding the name and the one holding the
    # new "2027" (the new "02" is named in "2027").
    assert flushed[0] == staged
    assert set(flushed[1:]) == {root / "2027" / "02", root / "2027", root}
    assert (root / "2027" / "02" / "abc.jpg").read_bytes() == b"\xff\xd8 picture"
