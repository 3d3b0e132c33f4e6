"""What a reply looks like on the page, built from a live turn or from its stored row.

Templates only read :class:`ReplyView`; the two sources (the runner while a turn streams, the
database once it has ended) are turned into it here, so the page and the SSE stream always agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from web.db.models import Message, Turn, TurnStatus
from web.events import TierInfo
from web.render import render_markdown
from web.runner import LiveTurn, state_for
from web.settings import TierConfig

STOPPED_NOTE = "Stopped."
INTERRUPTED_NOTE = "This reply was interrupted."
LENGTH_NOTE = "This reply reached the model's length limit, so it may end mid-thought."


@dataclass(frozen=True)
class ReplyView:
    turn_id: str
    conversation_id: str
    state: str
    """streaming | done | stopped | failed (the element's data-state)."""
    tier_name: str
    tier_label: str
    badge: str | None
    """None for the primary: its replies carry no badge element at all."""
    reason: str | None
    text: str
    error: str | None = None
    note: str | None = None

    @property
    def live(self) -> bool:
        return self.state == "streaming"

    @property
    def html(self) -> str | None:
        """The rendered markdown once the reply is final (streamed text stays plain until then)."""
        if self.live or not self.text:
            return None
        return render_markdown(self.text)


def _badge(tier: TierInfo | None) -> str | None:
    if tier is None or tier.is_primary:
        return None
    return tier.badge or tier.label


def from_live(
    live: LiveTurn, *, tier: TierInfo | None = None, reason: str | None = None
) -> ReplyView:
    """The live turn now; or, with `tier`, the empty reply a TierChange starts."""
    shown = tier or live.tier
    note = STOPPED_NOTE if live.status == TurnStatus.STOPPED else None
    if live.state == "stopped" and live.status == TurnStatus.INTERRUPTED:
        note = live.error
    elif live.hit_length_limit:
        note = LENGTH_NOTE
    return ReplyView(
        turn_id=live.turn_id,
        conversation_id=live.conversation_id,
        state=live.state,
        tier_name=shown.name if shown else "",
        tier_label=shown.label if shown else "Assistant",
        badge=_badge(shown),
        reason=reason if tier is not None else live.reason,
        text="" if tier is not None else live.text,
        error=live.error if live.state == "failed" else None,
        note=note,
    )


def from_row(
    turn: Turn,
    reply: Message | None,
    tiers: Mapping[str, TierConfig],
    *,
    order: Mapping[str, int],
) -> ReplyView:
    """A stored turn. A turn still marked live in the database shows as streaming."""
    state = state_for(turn.status)
    info = _tier_info(turn, tiers, order)
    note = None
    if turn.status == TurnStatus.STOPPED:
        note = STOPPED_NOTE
    elif turn.status == TurnStatus.INTERRUPTED:
        note = turn.error_message or INTERRUPTED_NOTE
    elif turn.hit_length_limit:
        note = LENGTH_NOTE
    return ReplyView(
        turn_id=turn.id,
        conversation_id=turn.conversation_id,
        state=state,
        tier_name=info.name if info else "",
        tier_label=info.label if info else "Assistant",
        badge=_badge(info),
        reason=turn.degraded_reason if info and not info.is_primary else None,
        text=reply.content if reply else "",
        error=(turn.error_message or "No model could answer.") if state == "failed" else None,
        note=note,
    )


def _tier_info(
    turn: Turn, tiers: Mapping[str, TierConfig], order: Mapping[str, int]
) -> TierInfo | None:
    if not turn.tier:
        return None
    config = tiers.get(turn.tier)
    if config is not None:
        return TierInfo(
            name=config.name,
            provider=config.provider,
            model=config.model,
            label=config.label,
            badge=config.badge,
            index=order[config.name],
        )
    # A tier since removed from the chain file: show what the row knows.
    return TierInfo(
        name=turn.tier,
        provider=turn.provider or "",
        model=turn.model or "",
        label=turn.tier,
        badge=turn.tier,
        index=turn.tier_index if turn.tier_index is not None else 1,
    )
