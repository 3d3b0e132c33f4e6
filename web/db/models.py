"""The schema: conversations and messages (the chat), turns and attempts (the log), and the
deferred jobs of queued turns.

A turn is one assistant reply: it answers one user message and owns one assistant message row whose
content is the reply text (partial while streaming, kept when stopped or interrupted). Every try
inside the turn is an attempt row. Times are UTC.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from web.status import AttemptOutcome, JobState, TurnStatus

E = TypeVar("E", bound=StrEnum)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL keeps the zone (timestamptz); SQLite stores text without it and hands back naive
    values. Writes are converted to UTC and reads are marked UTC, so callers always get aware times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class StrEnumType(TypeDecorator[E]):
    """A StrEnum stored as its plain string value (no database enum type, so adding a value
    needs no migration); reads come back as the enum."""

    impl = String(16)
    cache_ok = True

    def __init__(self, enum: type[E]) -> None:
        super().__init__()
        self._enum = enum

    def process_bind_param(self, value: E | str | None, dialect: Dialect) -> str | None:
        return None if value is None else self._enum(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> E | None:
        return None if value is None else self._enum(value)


# Named constraints let Alembic's batch mode (SQLite) find and alter them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    owner: Mapped[str] = mapped_column(String(64), index=True)
    """A hash of the browser session that made it; never the session id itself."""
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """When the session last had it on screen with no reply being written: replies that
    finished after this are "new" in the sidebar (web.db.sidebar)."""
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    """Set by Delete: hidden everywhere, kept for an undo, then removed for good (web.trash)."""

    messages: Mapped[list[Message]] = relationship(
        back_populates="conversation",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Message.id",
    )


class Message(Base):
    __tablename__ = "messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    role: Mapped[str] = mapped_column(String(16))
    """"user" or "assistant"."""
    content: Mapped[str] = mapped_column(Text, default="")
    turn_id: Mapped[str | None] = mapped_column(
        ForeignKey("turns.id", ondelete="SET NULL", use_alter=True), nullable=True, index=True
    )
    """For assistant messages: the turn that produced it."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="messages")


class Turn(Base):
    __tablename__ = "turns"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    user_message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    status: Mapped[TurnStatus] = mapped_column(
        StrEnumType(TurnStatus), default=TurnStatus.PENDING, index=True
    )
    tier: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    tier_index: Mapped[int | None] = mapped_column(Integer, nullable=True)
    provider: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    degraded_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    total_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    output_tokens: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hit_length_limit: Mapped[bool] = mapped_column(Boolean, default=False)
    """The reply stopped at the tier's max_output_tokens: complete as sent, but cut short."""
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    upgrade_of: Mapped[str | None] = mapped_column(
        ForeignKey("turns.id", ondelete="SET NULL"), nullable=True
    )
    """"Ask Sonnet again": the degraded turn this one re-ran on the primary (it stays in the log
    and one click away on the page)."""
    drill_id: Mapped[str | None] = mapped_column(
        ForeignKey("drills.id", ondelete="SET NULL"), nullable=True, index=True
    )
    """Set for a drill's turn (web.drills): kept out of the users' figures on the admin page."""
    process_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    """The process running this turn while it is live (web.processes): when its lease runs out,
    a surviving process marks the turn interrupted."""

    attempts: Mapped[list[Attempt]] = relationship(
        back_populates="turn",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Attempt.seq",
    )


class Attempt(Base):
    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    turn_id: Mapped[str] = mapped_column(ForeignKey("turns.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    elapsed_ms: Mapped[float] = mapped_column(Float)
    ttft_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[AttemptOutcome] = mapped_column(StrEnumType(AttemptOutcome))
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    retry_after_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    after_text: Mapped[bool] = mapped_column(Boolean, default=False)

    turn: Mapped[Turn] = relationship(back_populates="attempts")


class DeferredJob(Base):
    """A queued turn's job (web.deferral): written in the transaction that marks the turn queued
    (an outbox), so neither exists without the other. The turn id is its idempotency key, and
    the batch request's ``custom_id``."""

    __tablename__ = "deferred_jobs"

    turn_id: Mapped[str] = mapped_column(
        ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True
    )
    backend: Mapped[str] = mapped_column(String(32))
    state: Mapped[JobState] = mapped_column(StrEnumType(JobState), default=JobState.WAITING)
    request: Mapped[str] = mapped_column(Text)
    """The model request as JSON (web.deferral.request_to_json)."""
    reason: Mapped[str] = mapped_column(Text)
    """Why the turn was queued: the labels of the tiers that could not answer (a JSON list)."""
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """When a worker should next look at it (submit or poll)."""
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """A worker working on it holds it until then; another takes it over after."""
    leased_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    batch_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The backend's request id while submitted: a worker taking over polls it, never resubmits."""
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    submissions: Mapped[int] = mapped_column(Integer, default=0)
    polls: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class Drill(Base):
    """A drill (`understudy drill`, web.drills): the faults it applied, while it ran, its report."""

    __tablename__ = "drills"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    scenario: Mapped[str] = mapped_column(String(64))
    faults: Mapped[str] = mapped_column(Text)
    """The faults as JSON: [{"tier", "kind", ...params}] (web.drills.DrillFault)."""
    instance_wide: Mapped[bool] = mapped_column(Boolean, default=False)
    """True: the faults hit every turn while it runs; False: only the drill's own turns."""
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    """The faults stop here even if the drill never ends (its runner died): a drill restores."""
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    verdict: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """pass, fail, aborted or error; None while it runs."""
    report: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The report as JSON (the same document `understudy drill` writes to its report folder)."""
    markdown: Mapped[str | None] = mapped_column(Text, nullable=True)


Index("ix_turns_status_started", Turn.status, Turn.started_at)
Index("ix_deferred_jobs_state_next", DeferredJob.state, DeferredJob.next_at)


class Process(Base):
    """A process serving the app, announced by its heartbeat (web.processes). A process whose
    ``lease_until`` has passed is dead: its live turns are interrupted by a survivor."""

    __tablename__ = "processes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    lease_until: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
