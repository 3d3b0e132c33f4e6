"""kill -9 of the server running a reply, in a cluster of two on one PostgreSQL database: the
survivor marks the turn interrupted with the text of its last checkpoint, within a bound of a
few leases (UNDERSTUDY_LEASE_S=2 in the cluster; the bound is generous, an upper one only), and
the conversation takes a new message on the survivor afterwards."""

from __future__ import annotations

import signal
import time

from conftest import SONNET

from web.wording import INTERRUPTED_MESSAGE

from support.chat import ChatClient
from support.cluster import Cluster, cluster  # noqa: F401  (the fixture)
from support.pg_rows import pg_rows
from support.waiting import wait_until

SLOW = {"first_token_s": 0.05, "tokens_per_s": 20.0, "reply_tokens": 500}
"""About 25 s of streaming: the server is killed long before the reply ends."""
WITHIN_S = 30.0
"""Upper bound on the survivor's sweep after the kill: the lease (2 s) and a few beats, with
room for a loaded machine. On one machine the pid check usually makes it one beat."""


def test_a_killed_server_turn_is_interrupted_by_the_survivor_with_its_partial_text(
    cluster: Cluster,  # noqa: F811
) -> None:
    owner, survivor = cluster.start(), cluster.start()
    cluster.sim.set_profile(SONNET, **SLOW)
    chat = ChatClient(owner.url)
    conversation_id = chat.new_conversation("A long story, please")
    [turn] = pg_rows(
        cluster.database_url, "SELECT id FROM turns WHERE conversation_id = $1", conversation_id
    )
    turn_id = turn["id"]

    def saved() -> str:
        [row] = pg_rows(
            cluster.database_url,
            "SELECT content FROM messages WHERE turn_id = $1 AND role = 'assistant'",
            turn_id,
        )
        return str(row["content"])

    def state() -> tuple[str, str | None]:
        [row] = pg_rows(
            cluster.database_url, "SELECT status, error_message FROM turns WHERE id = $1", turn_id
        )
        return row["status"], row["error_message"]

    wait_until(lambda: bool(saved()), "a checkpoint of the reply")
    # Live while its process runs (read before the kill: once it is killed, the survivor may
    # sweep at its next beat, before any read here, on the same machine).
    assert state() == ("streaming", None)
    owner.process.send_signal(signal.SIGKILL)
    owner.process.wait(10)
    killed_at = time.monotonic()
    checkpointed = saved()  # a killed process writes nothing more; the sweep keeps the text

    wait_until(lambda: state()[0] == "interrupted", "the survivor's sweep", WITHIN_S)
    assert time.monotonic() - killed_at < WITHIN_S
    assert state() == ("interrupted", INTERRUPTED_MESSAGE)
    assert saved() == checkpointed and len(checkpointed.split()) < 500

    # The same browser session, now on the survivor: the conversation is free again.
    cluster.sim.set_profile(SONNET, first_token_s=0.02, tokens_per_s=400.0, reply_tokens=40)
    chat.http.base_url = survivor.url
    assert chat.send(conversation_id, "Are you still there?").status_code == 200
    chat.close()
