"""Which turn is a user message's reply: the one rule the chat page and the model's history share.

A user message can have several turns: Regenerate and Retry each add one, and "Ask Sonnet again"
adds an *upgrade*, a turn whose ``upgrade_of`` names the degraded turn it re-runs on the primary
(:mod:`web.upgrades`). The reply is the latest turn, except an upgrade that ended without one
(failed, stopped, interrupted, or anything else that is not an answer): then the turn it upgraded
stays the reply, on the page and in the history later turns send (its partial text is only in
the turn log). An upgrade still running takes the place at once, since its stream is what the
page shows, with the reply it may replace kept beside it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from web.db.models import Attempt, Message, Turn
from web.providers.base import ErrorKind
from web.status import TurnStatus

UPGRADE_TAKES_PLACE = frozenset(
    {TurnStatus.PENDING, TurnStatus.STREAMING, TurnStatus.OK, TurnStatus.DEGRADED}
)
"""The statuses in which an upgrade is its message's reply: running, or answered."""


def takes_place(status: TurnStatus, upgrade_of: str | None) -> bool:
    """Does this turn replace the earlier turns of its user message?"""
    return upgrade_of is None or status in UPGRADE_TAKES_PLACE


@dataclass(frozen=True)
class Upgrade:
    """An "Ask Sonnet again" in an exchange: the upgrade and the degraded turn it re-runs."""

    turn: Turn
    earlier: Turn
    earlier_reply: Message | None
    failure: ErrorKind | None = None
    """For an upgrade kept out: what its last try that failed ran into (None if none did)."""

    @property
    def kept(self) -> bool:
        """It ended without a reply: ``earlier`` is still the exchange's reply."""
        return not takes_place(TurnStatus(self.turn.status), self.turn.upgrade_of)


@dataclass(frozen=True)
class Exchange:
    """One user message and the turn that is its reply (None if no turn was started)."""

    user: Message
    turn: Turn | None
    reply: Message | None
    upgrade: Upgrade | None = None
    """The upgrade shown in ``turn``'s place (running or answered, ``earlier`` one click away),
    or the one that failed beside the kept ``turn``; None when there is none."""
    last: bool = False
    """The conversation's latest user message: where a new turn starts."""


def pair(messages: Sequence[Message], turns: Sequence[Turn]) -> list[Exchange]:
    """Each user message with its reply. ``turns`` in start order."""
    by_message: dict[int, list[Turn]] = {}
    for turn in turns:
        by_message.setdefault(turn.user_message_id, []).append(turn)
    replies = {m.turn_id: m for m in messages if m.role == "assistant" and m.turn_id}
    users = [m for m in messages if m.role == "user"]
    return [
        exchange_of(user, by_message.get(user.id, []), replies, last=n == len(users) - 1)
        for n, user in enumerate(users)
    ]


def exchange_of(
    user: Message, turns: Sequence[Turn], replies: dict[str, Message], *, last: bool
) -> Exchange:
    """``user``'s exchange from its turns (in start order) and the replies by turn id."""
    shown: Turn | None = None
    kept_by: Turn | None = None
    """The latest upgrade of ``shown`` that ended without a reply."""
    for turn in turns:
        if takes_place(TurnStatus(turn.status), turn.upgrade_of):
            shown, kept_by = turn, None
        elif shown is not None and turn.upgrade_of == shown.id:
            kept_by = turn
    if shown is None:
        return Exchange(user, None, None, last=last)
    reply = replies.get(shown.id)
    upgrade = None
    if kept_by is not None:
        upgrade = Upgrade(kept_by, shown, reply)
    elif shown.upgrade_of is not None:
        earlier = next((t for t in turns if t.id == shown.upgrade_of), None)
        if earlier is not None:
            upgrade = Upgrade(shown, earlier, replies.get(earlier.id))
    return Exchange(user, shown, reply, upgrade, last)


async def with_failures(session: AsyncSession, exchanges: Iterable[Exchange]) -> list[Exchange]:
    """The exchanges, each kept-out upgrade with what its primary ran into (one query, and only
    when there is such an upgrade)."""
    listed = list(exchanges)
    kept = {e.upgrade.turn.id for e in listed if e.upgrade is not None and e.upgrade.kept}
    if not kept:
        return listed
    rows = await session.execute(
        select(Attempt.turn_id, Attempt.error_kind)
        .where(Attempt.turn_id.in_(kept), Attempt.error_kind.is_not(None))
        .order_by(Attempt.turn_id, Attempt.seq)
    )
    # In attempt order, so each turn's last failure wins; the query leaves out rows without one.
    failures = {turn_id: ErrorKind(kind) for turn_id, kind in rows if kind is not None}
    return [
        replace(e, upgrade=replace(e.upgrade, failure=failures.get(e.upgrade.turn.id)))
        if e.upgrade is not None and e.upgrade.kept
        else e
        for e in listed
    ]
