"""The start-up heap of a long-running process, kept out of the cyclic garbage collector's sight.

Once a server or worker process has imported everything it will run, the objects alive are its
modules, classes, SQLAlchemy and pydantic models and caches (~200,000 objects) and they live as
long as the process. Every full collection walked them all again: measured, ~20% of a push
fan-out worker's CPU (a batch allocates tens of thousands of containers, so full collections come
often). `gc.freeze()` moves them to a permanent generation; objects made later are collected as
before.
"""

from __future__ import annotations

import gc

_settled = False


def settle() -> None:
    """Call once start-up is done (imports, models, job modules); later calls do nothing."""
    global _settled
    if not _settled:
        _settled = True
        gc.collect()
        gc.freeze()
