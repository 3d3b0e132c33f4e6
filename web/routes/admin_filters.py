"""The dashboard's filters: parsed from its query string, turned into a query and back into links.

``kind=drill`` lists drills' turns (the other kinds hold users' turns only); ``drill=<id>``
narrows any kind to one drill's turns (the link from a drill's report).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from fastapi import Request

from web.db.admin_queries import ListKind, TurnFilter
from web.errors import BadRequest
from web.providers.base import ErrorKind

RANGES = {"24h": timedelta(days=1), "7d": timedelta(days=7), "30d": timedelta(days=30)}
_DRILL_ID = re.compile(r"[0-9A-Za-z_-]{1,32}")
"""What a drill id can be (drills.id is 32 characters): anything else means "no filter"."""


class Filters:
    """The dashboard's query string, parsed leniently: an unknown value means "no filter"."""

    def __init__(
        self,
        kind: ListKind,
        tier: str,
        reason: str,
        range_: str,
        since: datetime | None,
        until: datetime | None,
        page: int,
        drill: str = "",
    ) -> None:
        self.kind, self.tier, self.reason, self.range = kind, tier, reason, range_
        self.since, self.until, self.page, self.drill = since, until, page, drill

    @classmethod
    def from_query(cls, request: Request) -> Filters:
        q = request.query_params
        kind = q.get("kind", "")
        reason = q.get("reason", "")
        range_ = q.get("range", "all")
        drill = q.get("drill", "")
        return cls(
            kind=ListKind(kind) if kind in set(ListKind) else ListKind.DEGRADED,
            tier=q.get("tier", "")[:64],
            reason=reason if reason in {k.value for k in ErrorKind} else "",
            range_=range_ if range_ in RANGES else "all",
            since=_parse_local("since", q.get("since")),
            until=_parse_local("until", q.get("until")),
            page=_positive_int(q.get("page")),
            drill=drill if _DRILL_ID.fullmatch(drill) else "",
        )

    def turn_filter(self, now: datetime) -> TurnFilter:
        since = self.since
        if since is None and self.range in RANGES:
            since = now - RANGES[self.range]
        return TurnFilter(
            kind=self.kind,
            tier=self.tier or None,
            reason=self.reason or None,
            since=since,
            until=self.until,
            drill_id=self.drill or None,
        )

    def query(self, *, page: int | None) -> str:
        params: dict[str, str] = {"kind": self.kind.value}
        for key, value in (("tier", self.tier), ("reason", self.reason), ("drill", self.drill)):
            if value:
                params[key] = value
        if self.range != "all":
            params["range"] = self.range
        if self.since:
            params["since"] = self.since.strftime("%Y-%m-%dT%H:%M")
        if self.until:
            params["until"] = self.until.strftime("%Y-%m-%dT%H:%M")
        if page is not None and page > 1:
            params["page"] = str(page)
        return urlencode(params)

    def input_value(self, moment: datetime | None) -> str:
        return moment.strftime("%Y-%m-%dT%H:%M") if moment else ""


def _parse_local(name: str, raw: str | None) -> datetime | None:
    """A datetime-local field ('2026-05-01T13:30'), read as UTC.

    Unreadable text means "no filter", like the other fields; a readable moment whose offset
    pushes it outside years 1-9999 in UTC is refused (400), since it cannot be shown or queried.
    """
    if not raw:
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise BadRequest(
            f"The {name!r} date {raw[:40]!r} falls outside years 1 to 9999 once converted to "
            "UTC; choose a date inside that range."
        ) from None


def _positive_int(raw: str | None) -> int:
    try:
        return max(1, int(raw or "1"))
    except ValueError:
        return 1
