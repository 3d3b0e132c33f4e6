"""The cluster fixture itself: two servers on one database answer, each on its own port."""

from __future__ import annotations

import httpx

from support.cluster import Cluster


def test_two_servers_share_one_database(cluster: Cluster) -> None:
    first, second = cluster.start(), cluster.start()
    assert first.port != second.port
    for server in (first, second):
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert first.database_url == second.database_url == cluster.database_url
