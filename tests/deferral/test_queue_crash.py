"""kill -9 of the server at the two moments that matter, then a restart: the reply lands exactly
once. The simulator runs as a process of its own (`understudy sim`), so its batches outlive the
server, as Anthropic's would."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import LiveApp, start_live_app, understudy_command

from web.sim.replies import reply_text

from support.chat import ChatClient
from support.queue_app import SONNET, all_down, queue_chain
from support.sim_control import Sim, running_sim
from support.waiting import wait_until

REPLY_TOKENS = 40  # FAST_PROFILE's, which reset() applies


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Sim]:
    with running_sim(tmp_path) as started:
        yield started


def _row(app: LiveApp, sql: str, *args: object) -> tuple[Any, ...] | None:
    with contextlib.closing(sqlite3.connect(app.data_dir / "understudy.db")) as db:
        row: tuple[Any, ...] | None = db.execute(sql, args).fetchone()
        return row


def _turn(app: LiveApp, turn_id: str) -> tuple[Any, ...]:
    row = _row(app, "SELECT status, tier FROM turns WHERE id = ?", turn_id)
    assert row is not None
    return row


def _job(app: LiveApp, turn_id: str) -> tuple[Any, ...] | None:
    return _row(app, "SELECT state, batch_id FROM deferred_jobs WHERE turn_id = ?", turn_id)


def _oks(app: LiveApp, turn_id: str) -> int:
    row = _row(
        app,
        "SELECT count(*) FROM attempts WHERE turn_id = ? AND tier = 'deferral' AND outcome = 'ok'",
        turn_id,
    )
    assert row is not None
    return int(row[0])


def _start(base: Path, sim: Sim, *, worker: bool, port: int | None = None) -> LiveApp:
    return start_live_app(
        base,
        chain_text=queue_chain(),
        env={"UNDERSTUDY_SIM_URL": sim.url},
        serve_args=() if worker else ("--no-worker",),
        port=port,
    )


def _queue_a_message(app: LiveApp, sim: Sim, prompt: str) -> str:
    sim.set_profile("*", first_token_s=0.02, tokens_per_s=400.0, reply_tokens=REPLY_TOKENS)
    all_down(sim)  # at the simulator itself: it is not embedded, so the app has no /_sim
    chat = ChatClient(app.url)
    try:
        conversation = chat.new_conversation(prompt)
        turn_id = chat.last_turn(conversation)
        wait_until(lambda: _turn(app, turn_id)[0] == "queued", "the turn to be queued")
        return turn_id
    finally:
        chat.close()


def _kill(app: LiveApp) -> None:
    app.process.kill()  # SIGKILL: no shutdown, no last write
    app.process.wait(10)


def test_killed_after_the_job_was_stored_the_restart_submits_it_once(
    tmp_path: Path, sim: Sim
) -> None:
    sim.set_profile(SONNET, batch_delay_s=0.5)
    first = _start(tmp_path, sim, worker=False)  # stores the job, never submits it
    turn_id = _queue_a_message(first, sim, "Kill me before I am sent")
    assert _job(first, turn_id) == ("waiting", None)
    _kill(first)

    second = _start(tmp_path, sim, worker=True, port=first.port)
    try:
        wait_until(lambda: _turn(second, turn_id)[0] == "degraded", "the reply to land")
        assert _turn(second, turn_id) == ("degraded", "deferral")
        assert len(sim.batches()) == 1
        assert _oks(second, turn_id) == 1
        reply = _row(second, "SELECT content FROM messages WHERE turn_id = ?", turn_id)
        assert reply == (reply_text(SONNET, "Kill me before I am sent", REPLY_TOKENS),)
    finally:
        second.stop()


def test_killed_after_submitting_the_restart_polls_the_stored_batch(
    tmp_path: Path, sim: Sim
) -> None:
    sim.set_profile(SONNET, batch_delay_s=8)
    first = _start(tmp_path, sim, worker=True)
    turn_id = _queue_a_message(first, sim, "Kill me once I am sent")
    wait_until(lambda: (_job(first, turn_id) or (None, None))[1] is not None, "the batch id")
    _kill(first)
    state, batch_id = _job(first, turn_id) or (None, None)
    assert state == "submitted" and batch_id
    assert _turn(first, turn_id)[0] == "queued"  # the batch takes 8 s: it had not landed

    second = _start(tmp_path, sim, worker=True, port=first.port)
    try:
        wait_until(lambda: _turn(second, turn_id)[0] == "degraded", "the reply to land")
        assert [b["id"] for b in sim.batches()] == [batch_id]  # polled, never sent again
        assert _oks(second, turn_id) == 1
    finally:
        second.stop()


def test_understudy_worker_lands_what_a_no_worker_server_queued(tmp_path: Path, sim: Sim) -> None:
    sim.set_profile(SONNET, batch_delay_s=0.5)
    app = _start(tmp_path, sim, worker=False)
    worker = None
    try:
        turn_id = _queue_a_message(app, sim, "Who lands me?")
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("UNDERSTUDY_") and not k.endswith("_API_KEY")
        }
        env.update(
            UNDERSTUDY_DATA_DIR=str(app.data_dir),
            UNDERSTUDY_CHAIN=str(tmp_path / "chain.toml"),
            UNDERSTUDY_SIM_URL=sim.url,
        )
        log = (tmp_path / "worker.log").open("wb")
        worker = subprocess.Popen(
            [*understudy_command(), "worker"], env=env, stdout=log, stderr=log, cwd=tmp_path
        )
        wait_until(lambda: _turn(app, turn_id)[0] == "degraded", "the worker to land the reply")
        assert _oks(app, turn_id) == 1 and len(sim.batches()) == 1
        assert "Understudy worker" in (tmp_path / "worker.log").read_text()
    finally:
        if worker is not None:
            worker.terminate()
            assert worker.wait(15) == 0  # SIGTERM: it finishes its step and exits cleanly
        app.stop()
