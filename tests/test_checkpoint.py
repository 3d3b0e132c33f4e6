"""web.checkpoint: live text reaches the database once per interval, only when it changed, and
never for a turn being finished. The interval is stepped by hand (no waiting)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import select

from web.checkpoint import Checkpointer
from web.db.migrate import upgrade_database
from web.db.models import Conversation, Message, Turn
from web.db.session import make_engine, make_sessionmaker, read_scope, session_scope
from web.db.turnlog import open_turn
from web.events import TextDelta, TierInfo, TierStarted
from web.live import LiveTurn
from web.status import TurnStatus

SONNET = TierInfo("sonnet", "anthropic", "claude-sonnet-4-6", "Sonnet", "", 0)


class Ticks:
    """A sleep that returns only when the test says one interval has passed."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()
        self._go = asyncio.Event()
        self.intervals: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.intervals.append(seconds)
        self.waiting.set()
        await self._go.wait()
        self._go.clear()

    async def tick(self) -> None:
        """Let one interval pass and wait until the checkpointer sleeps again (it has saved)."""
        await asyncio.wait_for(self.waiting.wait(), 5)
        self.waiting.clear()
        self._go.set()
        await asyncio.wait_for(self.waiting.wait(), 5)


async def test_saves_changed_text_once_per_interval(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"
    await asyncio.to_thread(upgrade_database, url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    try:
        async with session_scope(sessions) as session:
            conversation = Conversation(owner="o", title="t")
            session.add(conversation)
            await session.flush()
            message = Message(conversation_id=conversation.id, role="user", content="hi")
            session.add(message)
            await session.flush()
            turn_id, _ = await open_turn(
                session, conversation_id=conversation.id, user_message_id=message.id
            )
        live = LiveTurn(turn_id, "c")
        live.apply(TierStarted(SONNET, 1))
        turns: list[LiveTurn] = [live]
        saves: list[int] = []
        ticks = Ticks()
        checkpointer = Checkpointer(sessions, lambda: turns, interval_s=2.0, sleep=ticks)
        original = checkpointer.save

        async def counted(batch: Sequence[LiveTurn]) -> None:
            saves.append(len(batch))
            await original(batch)

        checkpointer.save = counted  # type: ignore[method-assign]

        async def stored() -> tuple[str, str]:
            async with read_scope(sessions) as session:
                turn = await session.get_one(Turn, turn_id)
                reply = await session.scalar(select(Message).where(Message.turn_id == turn_id))
                assert reply is not None
                return turn.status, reply.content

        checkpointer.ensure_running()
        live.apply(TextDelta("Hello"))
        live.apply(TextDelta(" wor"))
        await ticks.tick()
        assert saves == [1] and await stored() == (TurnStatus.STREAMING, "Hello wor")
        await ticks.tick()  # nothing changed: nothing written
        assert saves == [1]
        live.apply(TextDelta("ld"))
        # The runner leaves out a turn it is finishing: its final write must not be overtaken.
        turns.clear()
        await asyncio.wait_for(ticks.waiting.wait(), 5)
        ticks._go.set()
        assert checkpointer._task is not None
        await asyncio.wait_for(checkpointer._task, 5)  # nothing live: the task ends
        assert saves == [1] and await stored() == (TurnStatus.STREAMING, "Hello wor")
        assert set(ticks.intervals) == {2.0}
    finally:
        await engine.dispose()
