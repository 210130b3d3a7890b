"""Keep Python's cyclic garbage collector off the data a booking run builds.

Booking a big history allocates millions of small acyclic objects (entries, postings,
amounts, metadata dicts) next to the balance transactions loaded before it. Each of them counts
towards the collector's thresholds, so the collector ran full passes over the whole heap (the
loaded history included) again and again while freeing nothing: over half of the booking time
of 100k transactions (bench/bench_booking.py). Nothing booking builds forms a reference cycle,
so reference counting frees it all; the collector can sleep for the duration.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_gc"]


@contextmanager
def quiet_gc() -> Iterator[None]:
    """Pause the cyclic collector inside the block; restore it as it was afterwards.

    On the way out, what the block allocated is handed to the oldest generation in one list
    splice (``freeze`` then ``unfreeze``), so the first collection after the block does not walk
    it all again. Skipped when the program froze objects itself: ``unfreeze`` would undo that.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()
