"""A live turn's updates as JSON, for the watchers in other processes (web.live_redis).

Only what a follower needs to rebuild the page is encoded: the tier started, its text, each
attempt as it ends, and that the turn ended. The outcome itself is not: by the time ``Finished``
is published the runner has written it to the database, and a follower shows the final state
from there, as a reload would (so one code path renders every ended reply).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from web.events import AttemptRecord, TextDelta, TierInfo, TierStarted
from web.live import Finished, Update
from web.providers.base import ErrorKind
from web.status import AttemptOutcome, HedgeRole


@dataclass(frozen=True)
class Opened:
    """The first entry of a turn's stream: what a follower needs to make its LiveTurn."""

    conversation_id: str
    started_at: float
    upgrade_of: str | None = None


@dataclass(frozen=True)
class Ended:
    """The last entry: the outcome is in the database."""


Entry = Opened | Ended | TierStarted | TextDelta | AttemptRecord


def encode(update: Update | Opened) -> dict[str, Any]:
    match update:
        case TextDelta(text):
            return {"t": "d", "x": text}
        case TierStarted():
            return {
                "t": "s",
                "tier": _tier(update.tier),
                "attempt": update.attempt,
                "restart": update.restart,
                "retry": update.retry,
                "started_at": update.started_at,
                "next": _tier(update.next) if update.next is not None else None,
            }
        case AttemptRecord():
            return {
                "t": "a",
                "tier": _tier(update.tier),
                "attempt": update.attempt,
                "started_at": update.started_at,
                "elapsed_s": update.elapsed_s,
                "ttft_s": update.ttft_s,
                "outcome": update.outcome.value,
                "error_kind": update.error_kind.value if update.error_kind else None,
                "error_message": update.error_message,
                "status": update.status,
                "request_id": update.request_id,
                "retry_after": update.retry_after,
                "after_text": update.after_text,
                "open_since": update.open_since,
                "hedge": update.hedge.value if update.hedge else None,
            }
        case Finished():
            return {"t": "e"}
        case Opened():
            return {
                "t": "o",
                "c": update.conversation_id,
                "at": update.started_at,
                "up": update.upgrade_of,
            }


def dumps(items: list[dict[str, Any]]) -> str:
    return json.dumps(items, separators=(",", ":"), ensure_ascii=False)


class DecodeError(ValueError):
    """An entry this version cannot read (another version wrote it, or it is damaged)."""


def decode_batch(raw: bytes | str) -> list[Entry]:
    try:
        items = json.loads(raw)
        return [_decode(item) for item in items]
    except (ValueError, KeyError, TypeError) as exc:
        raise DecodeError(f"unreadable live-turn entry: {exc}") from exc


def _decode(item: dict[str, Any]) -> Entry:
    kind = item["t"]
    if kind == "d":
        return TextDelta(str(item["x"]))
    if kind == "s":
        nxt = item.get("next")
        return TierStarted(
            tier=_tier_from(item["tier"]),
            attempt=int(item["attempt"]),
            restart=bool(item["restart"]),
            retry=bool(item["retry"]),
            started_at=float(item["started_at"]),
            next=_tier_from(nxt) if nxt is not None else None,
        )
    if kind == "a":
        kind_value = item.get("error_kind")
        hedge = item.get("hedge")
        return AttemptRecord(
            tier=_tier_from(item["tier"]),
            attempt=int(item["attempt"]),
            started_at=float(item["started_at"]),
            elapsed_s=float(item["elapsed_s"]),
            ttft_s=item.get("ttft_s"),
            outcome=AttemptOutcome(item["outcome"]),
            error_kind=ErrorKind(kind_value) if kind_value else None,
            error_message=item.get("error_message"),
            status=item.get("status"),
            request_id=item.get("request_id"),
            retry_after=item.get("retry_after"),
            after_text=bool(item.get("after_text", False)),
            open_since=item.get("open_since"),
            hedge=HedgeRole(hedge) if hedge else None,
        )
    if kind == "e":
        return Ended()
    if kind == "o":
        return Opened(str(item["c"]), float(item["at"]), item.get("up"))
    raise KeyError(f"kind {kind!r}")


def _tier(tier: TierInfo) -> list[Any]:
    return [tier.name, tier.provider, tier.model, tier.label, tier.badge, tier.index]


def _tier_from(raw: list[Any]) -> TierInfo:
    name, provider, model, label, badge, index = raw
    return TierInfo(str(name), str(provider), str(model), str(label), str(badge), int(index))
