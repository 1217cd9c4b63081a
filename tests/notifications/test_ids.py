"""Ids made in bulk for a fan-out's rows are UUIDv7, unique and in time order."""

from __future__ import annotations

import uuid

from app.core.db import new_id
from app.notifications.ids import new_ids


def test_bulk_ids_are_version_7_unique_and_ordered_between_single_ids() -> None:
    before = new_id()
    batch = new_ids(5000)
    after = new_id()
    assert len(set(batch)) == 5000
    assert all(i.version == 7 and i.variant == uuid.RFC_4122 for i in batch)
    assert batch == sorted(batch)
    assert before < batch[0] and batch[-1] < after
    assert uuid.UUID(str(batch[0])) == batch[0]


def test_no_ids_for_an_empty_batch() -> None:
    assert new_ids(0) == []
