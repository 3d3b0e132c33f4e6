""" "Ask Sonnet again": the later upgrade of a degraded reply, re-run on the primary alone.

Policy, all of it here:

- Which reply may be upgraded (:func:`upgradeable`): a finished reply that carries a tier badge,
  that is, one a tier other than the primary wrote (fast mode, fallback provider, a delayed
  reply). The action, labelled with the primary's label, is offered (:class:`Offer`) only on the
  reply of the conversation's latest user message, only while no reply is being written in the
  conversation, and only while the primary's breaker is not open (closed, or half-open: the
  upgrade is then the probe). POST /c/{id}/turns/{turn}/upgrade checks the same again under the
  conversation's claim, so a stale page cannot start one anyway.
- What runs: a new turn (``turns.upgrade_of`` = the degraded turn) answering the same user
  message with the same history, streamed like any reply, on the primary alone
  (``Chain.run(primary_only=True)``): if the primary fails, the upgrade fails. Never deferred.
- Which turn is the reply is :mod:`web.db.exchanges`: the upgrade while it runs and once it
  answered; the degraded reply again when the upgrade failed, was stopped or interrupted (on the
  page after a reload, and in the history later turns send). Both stay in the turn log.
- What the page shows around it (:class:`UpgradeFrame`, ``templates/_upgrade.html``): while it
  runs, a note that the earlier reply is kept until the primary has answered; once answered, the
  note "Upgraded: ..." ; in both, the earlier reply (rendered by :mod:`web.render` like any reply,
  with its badge) in a closed ``<details>``. When it gave no reply, the earlier reply is shown
  with a note that says why, and may be asked again.
- The fragment that ends an upgrade (its stream's "done", Stop's answer) redraws the whole turn
  block from the database, since which reply it shows depends on how the upgrade ended.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from web.breaker import BreakerState
from web.chain import Chain
from web.db import chat as db
from web.db.exchanges import Exchange, Upgrade
from web.events import TierInfo
from web.health import tier_health
from web.runner import TurnRunner
from web.state import AppState
from web.status import ReplyState, TurnStatus
from web.views import Replies, ReplyView
from web.wording import (
    earlier_reply_summary,
    upgrade_kept_note,
    upgrade_label,
    upgraded_note,
    upgrading_note,
)


class UpgradeState(StrEnum):
    RUNNING = "running"
    UPGRADED = "upgraded"
    """The primary answered: its reply is shown, the earlier one is one click away."""
    KEPT = "kept"
    """The upgrade gave no reply: the earlier reply is the reply again."""


@dataclass(frozen=True)
class UpgradeFrame:
    turn_id: str
    """The upgrade's turn: the id of its turn block on the page, whichever reply it shows."""
    state: UpgradeState
    note: str
    earlier: ReplyView | None
    """The degraded reply, shown folded (None once it is the reply again)."""
    earlier_summary: str = ""


def upgradeable(view: ReplyView) -> bool:
    return view.state is ReplyState.DONE and view.badge is not None


@dataclass(frozen=True)
class Offer:
    """Whether "Ask <primary> again" may be offered in a conversation now."""

    primary: TierInfo
    primary_available: bool
    """Its breaker is not open."""
    busy: bool
    """A reply is being written in the conversation."""

    def label(self, view: ReplyView, exchange: Exchange | None) -> str | None:
        """The action's label for ``view``, the reply of ``exchange``, or None if not offered."""
        if exchange is None or not exchange.last or exchange.turn is None:
            return None
        if exchange.turn.id != view.turn_id or self.busy or not self.primary_available:
            return None
        return upgrade_label(self.primary.label) if upgradeable(view) else None


async def offer_in(
    chain: Chain, runner: TurnRunner, conversation_id: str, *, ending: str | None = None
) -> Offer:
    """The offer in a conversation now. ``ending``: a turn that is finishing (it is not busy)."""
    primary = (await tier_health(chain))[0]
    live = runner.live_in(conversation_id)
    return Offer(
        primary.tier,
        primary_available=primary.state is not BreakerState.OPEN,
        busy=live is not None and live != ending,
    )


def shown(views: Replies, exchange: Exchange, offer: Offer, *, settled: bool = False) -> ReplyView:
    """The reply an exchange shows, with its upgrade frame and the action if offered.
    ``settled``: the exchange's turns have all ended (a live row then shows as it was left)."""
    assert exchange.turn is not None
    pick = views.settled if settled else views.reply
    view = pick(exchange.turn, exchange.reply)
    frame = _frame(views, exchange.upgrade, view, offer.primary) if exchange.upgrade else None
    return replace(view, upgrade=frame, upgrade_label=offer.label(view, exchange))


def _frame(views: Replies, upgrade: Upgrade, view: ReplyView, primary: TierInfo) -> UpgradeFrame:
    earlier = views.settled(upgrade.earlier, upgrade.earlier_reply)
    summary = earlier_reply_summary(earlier.tier_label)
    if upgrade.kept:
        status = TurnStatus(upgrade.turn.status)
        note = upgrade_kept_note(primary.label, earlier.tier_label, status, upgrade.failure)
        return UpgradeFrame(upgrade.turn.id, UpgradeState.KEPT, note, None)
    if view.live:
        note = upgrading_note(primary.label, earlier.tier_label)
        return UpgradeFrame(upgrade.turn.id, UpgradeState.RUNNING, note, earlier, summary)
    note = upgraded_note(primary.label, earlier.tier_label, earlier.badge)
    return UpgradeFrame(upgrade.turn.id, UpgradeState.UPGRADED, note, earlier, summary)


def page_replies(views: Replies, exchanges: list[Exchange], offer: Offer) -> list[ReplyView | None]:
    """Each exchange's reply as the chat page shows it (None: no turn was started)."""
    return [shown(views, e, offer) if e.turn is not None else None for e in exchanges]


async def ended_fragment(
    views: Replies, state: AppState, owner: str, view: ReplyView, upgrade_of: str | None
) -> str:
    """What ends a reply on the page: its stream's "done" event, Stop's answer.

    An ordinary reply gets its done fragment, with the action when it may be upgraded now (only
    a degraded reply costs the queries). An upgrade gets its whole turn block, from the database.
    """
    if upgrade_of is None and not upgradeable(view):
        return views.done_fragment(view)
    conversation_id = view.conversation_id
    offer = await offer_in(state.chain, state.runner, conversation_id, ending=view.turn_id)
    if upgrade_of is None:
        latest = await db.load_exchange(state.sessions, owner, conversation_id)
        return views.done_fragment(replace(view, upgrade_label=offer.label(view, latest)))
    exchange = await db.load_exchange(state.sessions, owner, conversation_id, turn_id=view.turn_id)
    assert exchange is not None and exchange.turn is not None  # it holds this turn at least
    block = shown(views, exchange, offer, settled=True)
    if block.upgrade is None or block.upgrade.turn_id != view.turn_id:
        # Another turn took the exchange over meanwhile (from another tab): it has a block of its
        # own, and this page still has the upgrade's reply, which ends as any reply does.
        return views.done_fragment(view)
    return views.render("_upgrade_done.html", r=block)
