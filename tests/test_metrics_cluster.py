"""/metrics with two `understudy serve` processes sharing one PROMETHEUS_MULTIPROC_DIR (and one
database, Redis and simulator: tests/support/cluster.py): a scrape of either shows the turns and
the live turns of both, the database's figures once; a stopped server's counts stay and its live turns stop counting
(a killed one's too: tests/test_metrics_shared.py, by pid, saves a third server's start here)."""

from __future__ import annotations

from pathlib import Path

import httpx
from conftest import LiveApp

from support.chat import ChatClient
from support.cluster import Cluster, cluster  # noqa: F401  (the fixture)
from support.multiproc import Figures, parse
from support.waiting import wait_until

LIVE = ("understudy_live_turns", frozenset())
QUEUE = ("understudy_queue_depth", frozenset())


def scrape(server: LiveApp) -> Figures:
    reply = httpx.get(f"{server.url}/metrics", timeout=10.0)
    assert reply.status_code == 200, reply.text
    return parse(reply.text)  # fails if a family appears twice


def ended(figures: Figures) -> dict[str, float]:
    """status -> turns ended, users' turns of any tier."""
    counts: dict[str, float] = {}
    for (name, labels), value in figures.items():
        label = dict(labels)
        if name == "understudy_turns_total" and label["drill"] == "false" and value:
            counts[label["status"]] = counts.get(label["status"], 0) + value
    return counts


def ask(server: LiveApp, text: str) -> None:
    chat = ChatClient(server.url)
    try:
        conversation = chat.new_conversation(text)
        chat.finish(conversation, chat.last_turn(conversation))
    finally:
        chat.close()


def test_either_server_shows_the_turns_of_both(cluster: Cluster, tmp_path: Path) -> None:  # noqa: F811
    shared = tmp_path / "metrics"
    shared.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(shared)}
    first, second = cluster.start(env), cluster.start(env)
    ask(first, "One on the first server")
    ask(second, "One on the second server")
    ask(second, "Another on the second server")
    for server in (first, second):
        figures = scrape(server)
        assert ended(figures) == {"ok": 3}
        assert figures[LIVE] == 0
        assert figures[QUEUE] == 0

    # A reply that streams for a long while, on the second server: both count it live.
    cluster.sim.set_profile("*", first_token_s=0.02, tokens_per_s=2.0, reply_tokens=10_000)
    start_long_reply(second)
    wait_until(lambda: scrape(first)[LIVE] == 1, "the first server to count the live turn")
    assert scrape(second)[LIVE] == 1

    pid = second.process.pid
    assert f"gauge_livesum_{pid}.db" in {p.name for p in shared.iterdir()}
    second.stop()  # its live reply is interrupted, and its live gauge file removed
    files = {p.name for p in shared.iterdir()}
    assert f"gauge_livesum_{pid}.db" not in files
    assert f"counter_{pid}.db" in files
    figures = scrape(first)
    assert ended(figures) == {"ok": 3, "interrupted": 1}  # what the stopped server counted stays
    assert figures[LIVE] == 0


def start_long_reply(server: LiveApp) -> None:
    """A reply that goes on streaming (the simulator's profile says how slowly)."""
    chat = ChatClient(server.url)
    try:
        chat.new_conversation("A long one")
    finally:
        chat.close()
