"""The chaos bench's verdict: every message held against the streams, the pages and the turn log.

Three witnesses, each checked on its own, after the faults are cleared and every chat has
finished its turn:

- the stream each session followed (its final "done" event: data-state, data-tier, raw text);
- the app's own pages: each conversation loaded again by the session that owns it, every user
  message on it with a reply in a final state;
- the turn log: the SQLite file opened read-only (``mode=ro``), every turn joined to its user
  message and its reply.

The counts, each a set of offenders (turn ids, or prompts for messages without a turn):

- lost: a message the app accepted that has no turn (in the log) or no reply (on its page), and
  a turn that is not in a final status at the end;
- hung: a request still open at the turn's hard limit (deadline plus margin after the POST);
- false_success: a reply shown or logged as done (ok/degraded) whose text is not exactly the
  deterministic reply (``reply_text``) of the tier it names;
- http_5xx: every answer of the app with a 5xx status (from ``HttpLog``).
"""

from __future__ import annotations

import html
import itertools
import re
import sqlite3
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from chaos_chat import CSRF, REPLY, Action, ChatSession, HttpLog, TurnRecord, raw_text

from web.sim.replies import reply_text
from web.status import FINAL_STATUSES, TurnStatus

FINAL_STATES = frozenset({"done", "stopped", "failed"})
USER = re.compile(
    r'<article class="msg msg-user" data-testid="user-message" id="user-\d+">\s*'
    r'<div class="msg-meta">.*?</div>\s*<div class="msg-body plain">(.*?)</div>',
    re.S,
)
_ARTICLE = re.compile(r'<article class="msg msg-(user|assistant)"')


@dataclass(frozen=True)
class LoggedTurn:
    id: str
    status: str
    tier: str | None
    message: str
    """The user's message the turn answers."""
    prompt: str
    """What the model was asked: that message, joined to the ones before it that got no reply
    (see :func:`model_prompt`)."""
    text: str | None


@dataclass
class Verdict:
    turns: int = 0
    terminal: int = 0
    lost: dict[str, str] = field(default_factory=dict)
    hung: dict[str, str] = field(default_factory=dict)
    false_success: dict[str, str] = field(default_factory=dict)
    http_5xx: int = 0
    notes: list[str] = field(default_factory=list)
    """Oddities that are not one of the counts (a refused message that was stored anyway, a
    page that disagrees with the stream about a stopped reply)."""
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.hung or self.false_success or self.http_5xx)

    def line(self) -> str:
        return (
            f"chaos: turns={self.turns} terminal={self.terminal} lost={len(self.lost)} "
            f"hung={len(self.hung)} http_5xx={self.http_5xx} "
            f"false_success={len(self.false_success)}"
        )


class Expected:
    """The one complete reply each tier gives to a prompt."""

    def __init__(self, models: Mapping[str, str], reply_tokens: int) -> None:
        self._models = dict(models)
        self._reply_tokens = reply_tokens

    def wrong(self, tier: str | None, text: str | None, prompt: str) -> str | None:
        """Why ``text`` is not the complete reply of ``tier`` to ``prompt`` (None: it is)."""
        model = self._models.get(tier or "")
        if model is None:
            return f"names tier {tier!r}, which is not in the chain"
        if text is None:
            return "has no raw text"
        expected = reply_text(model, prompt, self._reply_tokens)
        if text == expected:
            return None
        for name, other in self._models.items():
            if text == reply_text(other, prompt, self._reply_tokens):
                return f"is {name}'s reply, labelled {tier}"
        if expected.startswith(text):
            return f"is {len(text)} of the {len(expected)} characters of {tier}'s reply"
        return f"is not {tier}'s reply ({len(text)} characters: {text[:80]!r}…)"


@dataclass(frozen=True)
class TurnLog:
    turns: list[LoggedTurn]
    attempts: Counter[tuple[str, str]]
    """(tier, outcome) -> how many attempts."""
    failed_skips: list[tuple[float, frozenset[str]]]
    """Failed turns that left tiers out because their breakers were open: (Unix start time,
    those tiers)."""


def read_turn_log(database: Path) -> TurnLog:
    """Every turn with its prompt and reply, and the attempts per (tier, outcome); read-only."""
    # A read-only connection: the bench must not be able to change what it checks.
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        turns = db.execute(
            "SELECT t.id, t.status, t.tier, t.conversation_id, t.user_message_id, u.content, "
            "a.content FROM turns t JOIN messages u ON u.id = t.user_message_id "
            "LEFT JOIN messages a ON a.turn_id = t.id AND a.role = 'assistant'"
        ).fetchall()
        messages = db.execute(
            "SELECT m.id, m.conversation_id, m.role, m.content, t.user_message_id, t.status "
            "FROM messages m LEFT JOIN turns t ON t.id = m.turn_id ORDER BY m.id"
        ).fetchall()
        attempts = db.execute(
            "SELECT tier, outcome, count(*) FROM attempts GROUP BY tier, outcome"
        ).fetchall()
        skipped = db.execute(
            "SELECT t.id, t.started_at, a.tier FROM turns t JOIN attempts a ON a.turn_id = t.id "
            "WHERE t.status = 'failed' AND a.outcome = 'skipped'"
        ).fetchall()
    finally:
        db.close()
    conversations: dict[str, list[_Message]] = {}
    for row in messages:
        conversations.setdefault(row[1], []).append(_Message(*row))
    logged = [
        LoggedTurn(
            turn_id,
            status,
            tier,
            message,
            model_prompt(conversations.get(conversation, []), user_message_id),
            text,
        )
        for turn_id, status, tier, conversation, user_message_id, message, text in turns
    ]
    counted = Counter({(tier, outcome): n for tier, outcome, n in attempts})
    skips: dict[str, tuple[float, set[str]]] = {}
    for turn_id, started_at, tier in skipped:
        # SQLite keeps UTC times as text without their zone (web.db.models.UTCDateTime).
        when = datetime.fromisoformat(started_at).replace(tzinfo=UTC).timestamp()
        skips.setdefault(turn_id, (when, set()))[1].add(tier)
    failed_skips = [(when, frozenset(tiers)) for when, tiers in skips.values()]
    return TurnLog(logged, counted, failed_skips)


@dataclass(frozen=True)
class _Message:
    id: int
    conversation_id: str
    role: str
    content: str
    answers: int | None
    """A reply: the user message its turn answers."""
    status: str | None
    """A reply: its turn's status."""


_IN_HISTORY = frozenset({"ok", "degraded", "stopped", "interrupted"})


def model_prompt(conversation: list[_Message], user_message_id: int) -> str:
    """The last user message of the history sent to the model for a turn answering
    ``user_message_id`` (what the simulator answers), from the conversation's messages in order.

    The app's rule (web/db/chat.py, ``_history``): earlier exchanges contribute the user's words
    and the latest reply that has text, failed replies are left out, and consecutive messages of
    one role are joined with a blank line. So after a failed or empty reply the model is asked
    the messages since the last reply that counts, joined.
    """
    latest: dict[int, _Message] = {}
    for message in conversation:  # in creation order: the latest reply wins
        answers = message.answers
        if message.role == "assistant" and answers is not None and answers < user_message_id:
            latest[answers] = message
    pending: list[str] = []
    for message in conversation:
        if message.role != "user" or message.id > user_message_id:
            continue
        pending.append(message.content)
        reply = latest.get(message.id)
        if reply is not None and reply.status in _IN_HISTORY and reply.content:
            pending = []
    return "\n\n".join(pending)


def check_streams(
    records: Iterable[TurnRecord],
    expected: Expected,
    prompts: Mapping[str, str],
    verdict: Verdict,
) -> None:
    for record in records:
        key = record.turn_id or record.message
        if record.hung:
            verdict.hung[key] = f"{record.message!r}: {record.hung}"
            continue
        if record.state == "done":
            prompt = prompts.get(record.turn_id or "", record.message)
            why = expected.wrong(record.tier, record.text, prompt)
            if why is not None:
                verdict.false_success[key] = f"stream: the done reply to {record.message!r} {why}"
        elif record.accepted == 200 and record.state not in FINAL_STATES:
            verdict.notes.append(f"turn {key}: the stream ended in state {record.state!r}")


def check_turn_log(
    turns: list[LoggedTurn],
    records: Iterable[TurnRecord],
    expected: Expected,
    verdict: Verdict,
) -> None:
    by_message: dict[str, list[LoggedTurn]] = {}
    for turn in turns:
        by_message.setdefault(turn.message, []).append(turn)
        verdict.statuses[(turn.tier or "-", turn.status)] += 1
        if turn.status not in FINAL_STATUSES:
            verdict.lost[turn.id] = f"the turn log has {turn.message!r} still {turn.status}"
            continue
        verdict.terminal += 1
        if turn.status in (TurnStatus.OK, TurnStatus.DEGRADED):
            why = expected.wrong(turn.tier, turn.text, turn.prompt)
            if why is not None:
                verdict.false_success[turn.id] = f"turn log: {turn.status} reply {why}"
    verdict.turns = len(turns)
    for record in records:
        logged = by_message.get(record.message, [])
        if record.accepted == 200 and not logged:
            verdict.lost[record.message] = "accepted (200) but has no turn in the turn log"
        elif record.accepted is not None and record.accepted != 200 and logged:
            verdict.notes.append(
                f"{record.message!r} was refused ({record.accepted}) but has turn {logged[0].id}"
            )
        cut = (TurnStatus.STOPPED, TurnStatus.INTERRUPTED)
        if logged and logged[0].status in cut and record.action is not Action.STOP:
            # Nobody pressed Stop, and no server was stopped.
            verdict.notes.append(f"turn {logged[0].id} is {logged[0].status} unasked")
        if len(logged) > 1:
            verdict.notes.append(f"{record.message!r} has {len(logged)} turns (expected one)")
        if logged and record.turn_id not in (None, logged[0].id):
            verdict.notes.append(
                f"{record.message!r}: the stream followed {record.turn_id}, "
                f"the log has {logged[0].id}"
            )


async def check_pages(
    sessions: Iterable[ChatSession],
    expected: Expected,
    prompts: Mapping[str, str],
    http_log: HttpLog,
    verdict: Verdict,
) -> int:
    """Load every conversation again, as its owner; returns how many pages were read."""
    pages = 0
    for session in sessions:
        sent: dict[str, list[TurnRecord]] = {}
        for record in session.records:
            if record.conversation is not None:
                sent.setdefault(record.conversation, []).append(record)
        for conversation, records in sent.items():
            path = f"/c/{conversation}"
            page = await session.http.get(path)
            http_log.note("GET", path, page, page.text)
            pages += 1
            if page.status_code != 200 or CSRF.search(page.text) is None:
                for record in records:
                    if record.accepted == 200:
                        verdict.lost[record.turn_id or record.message] = (
                            f"{path}: {page.status_code}"
                        )
                continue
            shown = _exchanges(page.text)
            for record in records:
                _check_shown(record, shown, expected, prompts, verdict, path)
    return pages


def _exchanges(page: str) -> dict[str, tuple[str, str, str, str | None] | None]:
    """prompt -> (turn id, tier, state, raw text) of its reply on the page (None: no reply)."""
    shown: dict[str, tuple[str, str, str, str | None] | None] = {}
    prompt: str | None = None
    starts = [m.start() for m in _ARTICLE.finditer(page)] + [len(page)]
    for begin, end in itertools.pairwise(starts):
        part = page[begin:end]
        if part.startswith('<article class="msg msg-user"'):
            found = USER.match(part)
            prompt = html.unescape(found.group(1)) if found else None
            if prompt is not None:
                shown[prompt] = None
        elif prompt is not None and (reply := REPLY.match(part)) is not None:
            turn_id, tier, state = reply.groups()
            shown[prompt] = (turn_id, tier, state, raw_text(part, turn_id))
            prompt = None
    return shown


def _check_shown(
    record: TurnRecord,
    shown: Mapping[str, tuple[str, str, str, str | None] | None],
    expected: Expected,
    prompts: Mapping[str, str],
    verdict: Verdict,
    path: str,
) -> None:
    key = record.turn_id or record.message
    if record.message not in shown:
        if record.accepted == 200:
            verdict.lost[key] = f"accepted (200) but not on {path}"
        return
    reply = shown[record.message]
    if reply is None:
        verdict.lost[key] = f"{path} shows {record.message!r} with no reply"
        return
    turn_id, tier, state, text = reply
    if state not in FINAL_STATES:
        verdict.lost[turn_id] = f"{path} still shows the reply {state} at the end"
        return
    if state == "done":
        why = expected.wrong(tier, text, prompts.get(turn_id, record.message))
        if why is not None:
            verdict.false_success[turn_id] = f"page {path}: the done reply {why}"
    if record.state in FINAL_STATES and (record.state, record.tier) != (state, tier):
        verdict.notes.append(
            f"turn {turn_id}: the stream ended {record.state}/{record.tier or '-'}, "
            f"the page shows {state}/{tier or '-'}"
        )
