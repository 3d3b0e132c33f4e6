"""web.live: the state a watcher rebuilds from updates, and subscribing without a gap."""

from __future__ import annotations

import asyncio

from web.events import AttemptRecord, Completed, Exhausted, TextDelta, TierInfo, TierStarted
from web.live import Finished, LiveTurn, LocalLiveTurns, Update
from web.outcome import answered, unanswered
from web.providers.base import ErrorKind
from web.status import AttemptOutcome, ReplyState
from web.wording import degraded_reason

SONNET = TierInfo("sonnet", "anthropic", "claude-sonnet-4-6", "Sonnet", "", 0)
HAIKU = TierInfo("haiku", "anthropic", "claude-haiku-4-5", "Haiku", "fast mode (smaller model)", 1)
CUT = AttemptRecord(
    SONNET, 1, 0.0, 0.3, 0.1, AttemptOutcome.FAILED, ErrorKind.TRUNCATED, "cut", after_text=True
)
OK = AttemptRecord(HAIKU, 2, 0.0, 0.3, 0.1, AttemptOutcome.OK)


def fallback_updates() -> list[Update]:
    """Sonnet starts, is cut mid-reply, Haiku starts over and completes."""
    done = Completed(HAIKU, "Whole reply.", 1, 2, 0.1, 0.5, degraded_reason(HAIKU, [CUT]))
    return [
        TierStarted(SONNET, 1),
        TextDelta("Half a "),
        CUT,
        TierStarted(HAIKU, 2, restart=True),
        TextDelta("Whole "),
        TextDelta("reply."),
        OK,
        Finished(answered(done, [CUT, OK])),
    ]


def test_apply_follows_a_restart_on_another_tier() -> None:
    turn = LiveTurn("t1", "c1")
    updates = fallback_updates()
    for update in updates[:2]:
        turn.apply(update)
    assert (turn.tier, turn.text, turn.reason, turn.state) == (
        SONNET,
        "Half a ",
        None,
        ReplyState.STREAMING,
    )
    for update in updates[2:4]:
        turn.apply(update)
    # The cut text is gone; Haiku is asked but has not answered, so nothing names it yet.
    assert (turn.tier, turn.text, turn.reason) == (None, "", None)
    assert turn.waiting is not None and turn.waiting.tier == HAIKU
    assert turn.last_attempt == CUT
    turn.apply(updates[4])
    # With its first text Haiku answers, and its reason names why the primary did not.
    assert turn.waiting is None
    assert (turn.tier, turn.text) == (HAIKU, "Whole ")
    assert turn.reason == degraded_reason(HAIKU, [CUT])
    for update in updates[5:]:
        turn.apply(update)
    assert (turn.text, turn.state, turn.finished, turn.revision) == (
        "Whole reply.",
        ReplyState.DONE,
        True,
        len(updates),
    )


def test_a_failed_turn_claims_no_tier_at_any_moment() -> None:
    turn = LiveTurn("t1", "c1")
    turn.apply(TierStarted(HAIKU, 1))
    assert (turn.tier, turn.reason) == (None, None)  # asked, not answering
    turn.apply(Finished(unanswered(Exhausted("No model could answer."), [], started_at=0.0)))
    assert (turn.tier, turn.reason, turn.state, turn.waiting) == (
        None,
        None,
        ReplyState.FAILED,
        None,
    )


def test_a_tier_answers_with_its_first_text_not_when_it_is_asked() -> None:
    turn = LiveTurn("t1", "c1")
    started = TierStarted(SONNET, 1, started_at=100.0, next=HAIKU)
    turn.apply(started)
    assert (turn.tier, turn.waiting) == (None, started)
    turn.apply(TextDelta("Hi"))
    assert (turn.tier, turn.waiting, turn.text) == (SONNET, None, "Hi")
    copy = turn.copy()
    assert (copy.tier, copy.waiting, copy.started_at) == (SONNET, None, turn.started_at)


async def test_a_subscriber_gets_the_state_so_far_and_every_later_update_once() -> None:
    hub = LocalLiveTurns()
    hub.open("t1", "c1")
    updates = fallback_updates()
    for update in updates[:3]:
        hub.publish("t1", update)
    subscription = hub.subscribe("t1")
    assert subscription is not None
    copy = subscription.turn
    assert (copy.tier, copy.text) == (SONNET, "Half a ")

    async def follow() -> list[Update]:
        seen: list[Update] = []
        async for batch in subscription.updates:
            seen.extend(batch)
        return seen

    reader = asyncio.create_task(follow())
    await asyncio.sleep(0)  # the reader waits for the next update
    for update in updates[3:]:
        hub.publish("t1", update)
        await asyncio.sleep(0)
    seen = await asyncio.wait_for(reader, 5)
    assert seen == updates[3:]
    for update in seen:
        copy.apply(update)
    assert (copy.text, copy.state) == ("Whole reply.", ReplyState.DONE)
    # The subscriber's copy is its own: the published state moved on without it.
    assert hub.subscribe("t1") is None and hub.get("t1") is None


async def test_a_slow_reader_catches_up_in_one_batch() -> None:
    hub = LocalLiveTurns()
    hub.open("t1", "c1")
    hub.publish("t1", TierStarted(SONNET, 1))
    subscription = hub.subscribe("t1")
    assert subscription is not None
    for word in ("a", "b", "c"):
        hub.publish("t1", TextDelta(word))
    batch = await asyncio.wait_for(anext(subscription.updates), 5)
    assert batch == [TextDelta("a"), TextDelta("b"), TextDelta("c")]
    assert subscription.turn.text == ""  # the copy changes only when the reader applies
