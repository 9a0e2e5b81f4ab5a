"""Dead letters: a message an agent cannot process is kept, raw, with why, and the agent goes on."""
from __future__ import annotations

from datetime import datetime, timezone


def dead_letter_record(
    *, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, agent: str, error: Exception
) -> dict:
    """The DeadLetter message (schemas/avro/DeadLetter.avsc) for one rejected message."""
    return {
        "source_topic": topic,
        "partition": int(partition),
        "offset": int(offset),
        "ts": datetime.now(timezone.utc),
        "agent": agent,
        "error_type": type(error).__name__,
        "error": str(error) or repr(error),
        "key": bytes(key) if key is not None else None,
        "value": bytes(value) if value is not None else None,
    }
