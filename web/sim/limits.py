"""The simulator's upper bounds, one place for every profile field and fault parameter.

In demo mode the control API is mounted in the app, so whatever it accepts is work a visitor can
make the server do: a profile of a million reply tokens, a stall of a year, a million faults for
every request to walk. Past a bound the control API answers 422 naming the field and its bound;
a value of the wrong type or below its minimum stays a 400.
"""

from __future__ import annotations

MAX_FIRST_TOKEN_S = 600.0
MAX_TOKENS_PER_S = 100_000.0
MAX_REPLY_TOKENS = 100_000
MAX_CONTEXT_WINDOW = 10_000_000
MAX_BATCH_DELAY_S = 86_400.0
"""batch_delay_s: a batch that would take longer than a day expires (as the real API's do)."""
MAX_BATCH_REQUESTS = 1_000
"""Requests in one Message Batch (the real API takes 100,000; every one here is kept in memory
and answered when the batch ends)."""
MAX_BATCHES = 1_000
"""Batches kept at once; past it the oldest ended one is forgotten (none ended: 429)."""

MAX_DELAY_S = 600.0
"""slow_first_token and stall: no test or demo waits longer than ten minutes."""
MAX_DOWN_S = 86_400.0
"""flap: a day down."""
MAX_RETRY_AFTER_S = 86_400.0
MAX_AFTER_TOKENS = MAX_REPLY_TOKENS
MAX_EVENT_INDEX = MAX_REPLY_TOKENS + 16
"""malformed `n`: a data event of the longest reply (a few more for the start and end events)."""
MAX_COUNT = 1_000_000
MAX_SEED = 2**64 - 1
"""A fault's `seed`: any 64-bit number; a longer one is work for nothing."""
MAX_TEXT_CHARS = 1_000
"""code, error_type and message of a fault."""
MAX_MODEL_CHARS = 200
MAX_FAULTS = 1_000
"""Faults set at once: every model request walks them."""
MAX_PROFILES = 1_000
"""Models with a profile of their own (POST /models for a new id adds one)."""
MAX_CONTROL_BODY_BYTES = 64 * 1024


class OutOfBounds(ValueError):
    """A value past one of the bounds above; the control API answers 422."""


def shown(bound: float) -> str:
    """A bound as a message shows it: 1000000, not 1e+06."""
    return str(int(bound)) if float(bound).is_integer() else f"{bound:g}"
