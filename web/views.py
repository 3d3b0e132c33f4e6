"""What a reply looks like on the page, built from a live turn or from its stored row.

Templates only read :class:`ReplyView`; the two sources (the live state while a turn streams, the
database once it has ended) are turned into it here, so the page and the SSE stream always agree.
:class:`Replies` is what the chat routes use: it picks the source and renders the fragments.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi.templating import Jinja2Templates
from markupsafe import escape

from web.db.models import Message, Turn
from web.deferral import DEFERRAL_TIER, Deferral
from web.events import TierInfo, tier_infos
from web.live import LiveTurn, LiveTurns
from web.render import render_markdown, render_streaming
from web.settings import Settings
from web.status import ReplyState, TurnStatus
from web.wording import (
    INTERRUPTED_NOTE,
    LENGTH_NOTE,
    NO_MODEL_MESSAGE,
    STOPPED_NOTE,
    answer_now_label,
    generated_via,
    queued_for,
    waiting_status,
)

if TYPE_CHECKING:
    from web.upgrades import UpgradeFrame

STARTING_STATUS = "Waiting for a model…"
"""The status for the moment between a turn's start and its first try."""


@dataclass(frozen=True)
class ReplyView:
    turn_id: str
    conversation_id: str
    state: ReplyState
    tier_name: str
    tier_label: str
    badge: str | None
    """None for the primary: its replies carry no badge element at all."""
    reason: str | None
    text: str
    error: str | None = None
    note: str | None = None
    status: str | None = None
    """While a reply waits for a tier's first text: who is being asked, and why (else None)."""
    waited_s: float = 0.0
    """How long the current wait has lasted so far (the page counts on from here)."""
    attempt: int | None = None
    """The try being waited for (what "answer now" abandons)."""
    answer_now: str | None = None
    """The label of the button that stops waiting ("Answer with Haiku now"), if there is a next
    tier to ask."""
    ttft_s: float | None = None
    total_s: float | None = None
    started_at: datetime | None = None
    """When the turn started (aware UTC)."""
    upgrade_label: str | None = None
    """ "Ask Sonnet again", when this degraded reply may be upgraded now (web.upgrades)."""
    upgrade: UpgradeFrame | None = None
    """The upgrade around this reply, if any: its note, the earlier reply (web.upgrades)."""

    @property
    def live(self) -> bool:
        return self.state is ReplyState.STREAMING

    @property
    def queued(self) -> bool:
        return self.state is ReplyState.QUEUED

    @property
    def followed(self) -> bool:
        """Its page follows it over the stream: it is being written, or it waits in the queue."""
        return self.live or self.queued

    @property
    def badge_title(self) -> str:
        return queued_for(self.tier_label) if self.queued else generated_via(self.tier_label)

    @property
    def html(self) -> str:
        """The reply as sanitised HTML: rendered as it streams, the same way as once final."""
        if not self.text:
            return ""
        return render_markdown(self.text) if not self.live else render_streaming(self.text)

    @property
    def timing(self) -> str | None:
        """ "first token 0.4 s · 2.1 s in all", under a finished reply."""
        if self.state is not ReplyState.DONE or self.total_s is None:
            return None
        total = f"{_seconds(self.total_s)} in all"
        if self.ttft_s is None:
            return total
        return f"first token {_seconds(self.ttft_s)} · {total}"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def badge_of(tier: TierInfo | None) -> str | None:
    """The badge a reply from ``tier`` wears (None: the primary's wear none)."""
    if tier is None or tier.is_primary:
        return None
    return tier.badge or tier.label


def _note(status: TurnStatus, error: str | None, hit_length_limit: bool) -> str | None:
    """The line under a finished reply, live or stored: the same words either way."""
    if status is TurnStatus.STOPPED:
        return error or STOPPED_NOTE  # a cancelled queued message says so
    if status is TurnStatus.INTERRUPTED:
        return error or INTERRUPTED_NOTE
    return LENGTH_NOTE if hit_length_limit else None


def from_live(
    live: LiveTurn, now: float | None = None, *, deferral: TierInfo | None = None
) -> ReplyView:
    """The live turn as it is now (finished or not). ``now``: Unix time, for the wait so far.
    ``deferral``: the tier a queued turn waits for (web.deferral)."""
    outcome = live.outcome
    if outcome is not None and outcome.status is TurnStatus.QUEUED:
        return _queued(live.turn_id, live.conversation_id, live.reason, deferral, live.started_at)
    note = None
    if outcome is not None:
        note = _note(outcome.status, outcome.error, outcome.hit_length_limit)
    tier = live.tier
    state = live.state
    status, waited_s, attempt, answer_now = None, 0.0, None, None
    waiting = live.waiting
    if waiting is not None:
        before = live.last_attempt
        status = waiting_status(waiting.tier, before, retry=waiting.retry)
        waited_s = max(0.0, (time.time() if now is None else now) - waiting.started_at)
        attempt = waiting.attempt
        answer_now = answer_now_label(waiting.next) if waiting.next is not None else None
    elif outcome is None and not live.text:
        status = STARTING_STATUS
    return ReplyView(
        turn_id=live.turn_id,
        conversation_id=live.conversation_id,
        state=state,
        tier_name=tier.name if tier else "",
        tier_label=tier.label if tier else "Assistant",
        badge=badge_of(tier),
        reason=live.reason,
        text=live.text,
        error=outcome.error if outcome is not None and state is ReplyState.FAILED else None,
        note=note,
        status=status,
        waited_s=waited_s,
        attempt=attempt,
        answer_now=answer_now,
        ttft_s=outcome.ttft_s if outcome is not None else None,
        total_s=outcome.total_s if outcome is not None else None,
        started_at=datetime.fromtimestamp(live.started_at, UTC),
    )


QUEUED_BADGE = "queued"


def _queued(
    turn_id: str,
    conversation_id: str,
    reason: str | None,
    deferral: TierInfo | None,
    started_at: float | datetime,
) -> ReplyView:
    when = (
        started_at if isinstance(started_at, datetime) else datetime.fromtimestamp(started_at, UTC)
    )
    return ReplyView(
        turn_id=turn_id,
        conversation_id=conversation_id,
        state=ReplyState.QUEUED,
        tier_name=deferral.name if deferral else "",
        tier_label=deferral.label if deferral else "Assistant",
        badge=QUEUED_BADGE,
        reason=reason,
        text="",
        started_at=when,
    )


def from_row(turn: Turn, reply: Message | None, tiers: Mapping[str, TierInfo]) -> ReplyView:
    """A stored turn. A turn still marked live in the database shows as streaming."""
    status = TurnStatus(turn.status)
    if status is TurnStatus.QUEUED:
        deferral = tiers.get(DEFERRAL_TIER)
        return _queued(
            turn.id, turn.conversation_id, turn.degraded_reason, deferral, turn.started_at
        )
    state = status.reply_state
    info = _tier_info(turn, tiers)
    note = _note(status, turn.error_message, turn.hit_length_limit)
    return ReplyView(
        turn_id=turn.id,
        conversation_id=turn.conversation_id,
        state=state,
        tier_name=info.name if info else "",
        tier_label=info.label if info else "Assistant",
        badge=badge_of(info),
        reason=turn.degraded_reason if info and not info.is_primary else None,
        text=reply.content if reply else "",
        error=(turn.error_message or NO_MODEL_MESSAGE) if state is ReplyState.FAILED else None,
        note=note,
        ttft_s=turn.ttft_ms / 1000 if turn.ttft_ms is not None else None,
        total_s=turn.total_ms / 1000 if turn.total_ms is not None else None,
        started_at=turn.started_at,
    )


def _tier_info(turn: Turn, tiers: Mapping[str, TierInfo]) -> TierInfo | None:
    if not turn.tier:
        return None
    info = tiers.get(turn.tier)
    if info is not None:
        return info
    # A tier since removed from the chain file: show what the row knows.
    return TierInfo(
        name=turn.tier,
        provider=turn.provider or "",
        model=turn.model or "",
        label=turn.tier,
        badge=turn.tier,
        index=turn.tier_index if turn.tier_index is not None else 1,
    )


class Replies:
    """The chat's replies: from the live state while a turn runs, else as stored; and their
    fragments."""

    def __init__(
        self,
        settings: Settings,
        live_turns: LiveTurns,
        templates: Jinja2Templates,
        deferral: Deferral | None = None,
    ) -> None:
        """``deferral``: the app's (AppState.deferral), so a queued turn shows whom it waits for."""
        self.tiers = {info.name: info for info in tier_infos(settings.tiers)}
        self.deferral = deferral.info if deferral is not None else None
        if self.deferral is not None:
            self.tiers[DEFERRAL_TIER] = self.deferral
        self.live_turns = live_turns
        self.templates = templates
        self.answer_now_after_s = settings.answer_now_after_s

    def reply(self, turn: Turn, reply: Message | None) -> ReplyView:
        """The reply as the page shows it: from the live state while live, else as stored.

        A row still marked live that is not live here (it finished a moment ago, or its outcome
        could not be written) shows as streaming; its stream then sends the final state.
        """
        live = self.live_turns.get(turn.id)
        if live is not None:
            return self.from_live(live)
        return from_row(turn, reply, self.tiers)

    def from_live(self, live: LiveTurn) -> ReplyView:
        return from_live(live, deferral=self.deferral)

    def settled(self, turn: Turn, reply: Message | None) -> ReplyView:
        """The final state of a turn that is no longer live (it has been written by then)."""
        view = from_row(turn, reply, self.tiers)
        if view.live:
            return replace(view, state=ReplyState.STOPPED, note=INTERRUPTED_NOTE)
        return view

    def render(self, name: str, **context: Any) -> str:
        context.setdefault("answer_now_after_s", self.answer_now_after_s)
        return self.templates.get_template(name).render(**context)

    def reply_fragment(self, view: ReplyView, *, quiet: bool = False) -> str:
        """The whole reply, replacing the one on the page. ``quiet``: with its status region
        empty, so that filling it next is announced (a region inserted with its text is not)."""
        return self.render("_reply.html", r=view, oob=True, quiet=quiet)

    def update_fragment(self, view: ReplyView, *, status: bool, body: bool) -> str:
        """Parts of a reply, each swapped into the element already on the page: its status
        line (a live region, so a change is announced) and "answer now" button, its body."""
        return self.render("_reply_update.html", r=view, status=status, body=body)

    def body_fragment(self, live: LiveTurn) -> str:
        """``update_fragment(view, status=False, body=True)`` of a streaming reply, made without
        a view or a template: it is what nearly every update of a stream sends (the same markup;
        tests/test_views.py holds them equal)."""
        text = live.text
        html = render_streaming(text) if text else ""
        return f'<div id="body-{escape(live.turn_id)}" hx-swap-oob="innerHTML">{html}</div>'

    def done_fragment(self, view: ReplyView) -> str:
        return self.render("_done.html", r=view)
