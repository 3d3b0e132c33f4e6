"""Times on the page: ISO-8601 UTC for the browser, and a UTC text until the browser rewrites it.

The server does not know the reader's time zone, so each ``<time>`` (templates/_time.html) carries
its instant in ``datetime`` and static/chat-chrome.js writes it in the reader's zone and language.
What the server writes is the fallback (no JavaScript, or before the script ran): honest about
being UTC, and short like the final text: the time for today, the date for other days.
"""

from __future__ import annotations

from datetime import UTC, datetime

from jinja2 import Environment


def iso_utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def short_utc(at: datetime, now: datetime | None = None) -> str:
    at, now = at.astimezone(UTC), (now or datetime.now(UTC)).astimezone(UTC)
    if at.date() == now.date():
        return at.strftime("%H:%M UTC")
    if at.year == now.year:
        return f"{at.day} {at:%b}"
    return f"{at.day} {at:%b %Y}"


def full_utc(at: datetime) -> str:
    at = at.astimezone(UTC)
    return f"{at:%A} {at.day} {at:%B %Y, %H:%M:%S} UTC"


def install_filters(env: Environment) -> None:
    env.filters.update(iso_utc=iso_utc, short_utc=short_utc, full_utc=full_utc)
