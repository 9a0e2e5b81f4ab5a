"""Voting again on a bar seen before: what a bar-driven agent keeps so that a bar re-delivered after a
crash gets the same vote, under the same id, as the first time (its first copy may have been lost
between the table's changelog and the send)."""
from __future__ import annotations

# how many bars back a re-delivered bar can still be voted on again (a worker killed before its
# commit re-reads its last few seconds of bars)
REVOTE_BARS = 64


def kept(window: int) -> int:
    """How many bars an agent whose vote reads `window` bars keeps."""
    return window + REVOTE_BARS


def revote_index(bars_us: list[int], bar_us: int, window: int) -> int | None:
    """The position of bar `bar_us` in the kept bars when its vote can be made again (its whole window
    is kept, or nothing was dropped yet and the list starts at the first bar); else None."""
    if bar_us not in bars_us:
        return None
    at = bars_us.index(bar_us)
    nothing_dropped = len(bars_us) < kept(window)
    return at if at + 1 >= window or nothing_dropped else None
