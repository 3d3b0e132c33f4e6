"""The dashboard's filters (web.routes.admin_filters): out-of-range dates are a clear 400."""

from __future__ import annotations

import httpx
import pytest

from .conftest import log_in, text_of

OUT_OF_RANGE = [
    "/admin?until=9999-12-31T23:59-05:00",
    "/admin?since=0001-01-01T00:00%2B05:00",
    "/admin/degraded.csv?until=9999-12-31T23:59-05:00",
    "/admin/degraded.csv?since=0001-01-01T00:00%2B05:00",
]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path", OUT_OF_RANGE)
async def test_a_date_outside_the_utc_range_is_a_bad_request_not_a_crash(
    client: httpx.AsyncClient, path: str
) -> None:
    await log_in(client)
    reply = await client.get(path)
    assert reply.status_code == 400
    assert "Bad request" in text_of(reply.text)
    assert "outside years 1 to 9999" in reply.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_dates_at_the_edges_of_the_range_still_filter(client: httpx.AsyncClient) -> None:
    await log_in(client)
    for path in ("/admin?until=9999-12-31T23:59", "/admin?since=0001-01-01T00:00"):
        assert (await client.get(path)).status_code == 200
