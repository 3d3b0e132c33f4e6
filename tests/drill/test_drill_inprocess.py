"""`understudy drill` with no --target: the app on the simulator, in the drill's own process.
Every standard scenario holds there, each its own drill that the server keeps with its report."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from web.drill.scenarios import SCENARIOS

from support.drill import drill_env, report_of, run_drill
from support.queue_app import queue_chain

RUN_TIMEOUT_S = 600.0
"""An upper bound only: the quarterly set takes about half a minute here."""
GENEROUS = ["--ttft-p95", "30", "--total-p95", "60"]
"""No loaded machine misses these; the scenarios' own costs (a hang's timeout) come on top."""
PASSWORD = "drill-test-password"


def test_every_scenario_holds_against_the_app_on_the_simulator(tmp_path: Path) -> None:
    chain = tmp_path / "chain.toml"
    chain.write_text(queue_chain())  # the test chain's short timeouts, and a [deferral] table
    args = ["--scenario", "quarterly", "--prompts", "2", "--concurrency", "2", *GENEROUS]
    args += ["--report-dir", str(tmp_path / "drills")]
    result = run_drill(args, drill_env(tmp_path, chain, PASSWORD), tmp_path, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    assert "no --target, drilling the app on the simulator" in result.stderr

    data, markdown = report_of(tmp_path / "drills")
    names = [s.name for s in SCENARIOS]
    assert [d["scenario"] for d in data["drills"]] == names
    for drill in data["drills"]:
        assert drill["verdict"] == "pass", (drill["scenario"], drill["reasons"])
        assert (drill["in_process"], drill["upstream"], drill["sent"]) == (True, "simulator", 2)
        assert drill["recovery"]["passed"] is True
    assert data["verdict"] == "pass"
    assert markdown.startswith("# Quarterly drill: PASS")
    revoked = data["drills"][0]["faults"]
    assert {f["tier"] for f in revoked} == {"sonnet", "haiku"}  # the key, for every tier with it
    assert not any(f["simulated_in_app"] for f in revoked)  # the simulator itself answered 401

    # UNDERSTUDY_DATA_DIR was set, so the app's data is there: each drill, its verdict and the
    # report sent with its end call, and its turns flagged with its id.
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "understudy.db")) as db:
        drills = db.execute("SELECT id, scenario, verdict, report FROM drills ORDER BY started_at")
        rows = drills.fetchall()
        flagged = dict(
            db.execute(
                "SELECT drill_id, count(*) FROM turns WHERE drill_id IS NOT NULL GROUP BY drill_id"
            ).fetchall()
        )
    assert [(scenario, verdict) for _, scenario, verdict, _ in rows] == [(n, "pass") for n in names]
    # The 2 messages, and the recovery check's (flagged too: not users' turns).
    tries = {d["drill_id"]: d["recovery"]["tries"] for d in data["drills"]}
    assert all(flagged[drill_id] == 2 + tries[drill_id] for drill_id, *_ in rows)
    stored = json.loads(rows[1][3])  # the final report replaced the one sent with the end call
    assert stored["scenario"] == "primary-down" and stored["recovery"]["passed"] is True


def test_without_a_data_folder_the_app_runs_in_a_temporary_one(tmp_path: Path) -> None:
    chain = tmp_path / "chain.toml"
    chain.write_text(queue_chain())
    env = drill_env(tmp_path, chain, PASSWORD)
    del env["UNDERSTUDY_DATA_DIR"]
    args = ["--scenario", "primary-down", "--prompts", "1", *GENEROUS]
    result = run_drill(args, env, tmp_path, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, result.stderr
    # The report goes to the data folder's drills/ (./data here); the app's database did not.
    data, _ = report_of(tmp_path / "data" / "drills")
    assert data["verdict"] == "pass"
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["drills"]
