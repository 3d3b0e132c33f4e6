"""The server's fallback text for times: UTC, said so, short like the browser's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from web.times import full_utc, iso_utc, short_utc

NOW = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)


def test_iso_is_utc_whatever_the_zone_it_was_given_in() -> None:
    india = timezone(timedelta(hours=5, minutes=30))
    assert iso_utc(datetime(2026, 3, 4, 10, 36, 7, 123456, tzinfo=india)) == "2026-03-04T05:06:07Z"


def test_short_is_the_time_today_else_the_date() -> None:
    assert short_utc(datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC), NOW) == "05:06 UTC"
    assert short_utc(datetime(2026, 3, 3, 23, 59, tzinfo=UTC), NOW) == "3 Mar"
    assert short_utc(datetime(2025, 12, 31, 22, 0, tzinfo=UTC), NOW) == "31 Dec 2025"


def test_full_says_everything() -> None:
    at = datetime(2025, 12, 31, 22, 0, 5, tzinfo=UTC)
    assert full_utc(at) == "Wednesday 31 December 2025, 22:00:05 UTC"
