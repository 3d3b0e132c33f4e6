"""A tier's service level in the chain file, what `understudy drill` holds a tier to:

    sla = { ttft_p95_s = 3.0, total_p95_s = 30.0 }

``ttft_p95_s``: the 95th percentile of the time users wait for the first word of a reply from
this tier; ``total_p95_s``: of the time to the whole reply. Optional per tier: a tier without it
is held to :data:`DEFAULT_SLA`, and a drill's report says so. Nothing in the serving path reads
it; the drill does (web.drill.scenarios), with flags to override it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

_EXAMPLE = "{ ttft_p95_s = 3.0, total_p95_s = 30.0 }"


@dataclass(frozen=True)
class SLA:
    ttft_p95_s: float = 3.0
    total_p95_s: float = 30.0


DEFAULT_SLA = SLA()
"""What a tier is held to when its chain-file entry has no ``sla``."""


def parse_sla(raw: Any, *, where: str, error: type[Exception]) -> SLA | None:
    """None when the tier has no ``sla``; ``error`` is raised (with the fix) for a bad one
    (settings passes its ConfigError, which this module cannot import without a cycle)."""
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise error(f"{where}: sla must be a table like {_EXAMPLE}.")
    allowed = set(SLA.__dataclass_fields__)
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise error(
            f"{where}: unknown sla setting(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(allowed))}."
        )
    values: dict[str, float] = {}
    for key, value in raw.items():
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise error(f"{where}: sla.{key} must be a positive number of seconds.")
        values[key] = float(value)
    sla = SLA(**values)
    if sla.total_p95_s < sla.ttft_p95_s:
        raise error(
            f"{where}: sla.total_p95_s ({sla.total_p95_s:g} s) is shorter than sla.ttft_p95_s "
            f"({sla.ttft_p95_s:g} s): a whole reply cannot come before its first word."
        )
    return sla
