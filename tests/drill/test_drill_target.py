"""`understudy drill --target` against a running server (the shared live app, on the simulator):
a broken understudy fails the drill, a wrong badge is caught, an abort and Ctrl-C restore."""

from __future__ import annotations

import re
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import ADMIN_PASSWORD, HAIKU, OPENAI, LiveApp

from support.chat import ChatClient
from support.drill import (
    STARTED,
    Lines,
    drill_command,
    drill_env,
    drill_state,
    report_of,
    run_drill,
)

RUN_TIMEOUT_S = 180.0
"""An upper bound only: these drills take a few seconds."""
GENEROUS = ["--ttft-p95", "30", "--total-p95", "60"]
"""SLA flags that no loaded machine misses: these tests are about tiers and words, not speed."""


def chain_of(app: LiveApp) -> Path:
    return app.data_dir.parent / "chain.toml"


def drill(
    app: LiveApp, tmp_path: Path, *args: str, chain: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = drill_env(tmp_path, chain or chain_of(app), ADMIN_PASSWORD)
    command = ["--target", app.url, "--report-dir", str(tmp_path / "drills"), *GENEROUS, *args]
    return run_drill(command, env, tmp_path, timeout=RUN_TIMEOUT_S)


def plain_turn(app: LiveApp) -> str:
    """The tier that answers an ordinary user (no drill header) now."""
    user = ChatClient(app.url)
    try:
        conversation = user.new_conversation("An ordinary message after the drill")
        user.finish(conversation, user.last_turn(conversation))
        return user.turns(conversation)[-1][1]
    finally:
        user.close()


def test_primary_down_passes_when_the_fallback_works(live_app: LiveApp, tmp_path: Path) -> None:
    result = drill(live_app, tmp_path, "--scenario", "primary-down", "--prompts", "3")
    assert result.returncode == 0, result.stderr
    data, markdown = report_of(tmp_path / "drills")
    assert data["verdict"] == "pass" and data["reasons"] == []
    assert data["upstream"] == "simulator" and data["sent"] == 3
    assert data["recovery"]["passed"] is True
    assert "# Drill primary-down: PASS" in markdown
    state = drill_state(live_app.url, ADMIN_PASSWORD, data["drill_id"])
    assert (state["running"], state["verdict"]) == (False, "pass")


def test_a_sabotaged_understudy_fails_primary_down_and_the_report_says_why(
    live_app: LiveApp, tmp_path: Path
) -> None:
    live_app.set_fault(HAIKU, "status", status=529)  # Haiku is broken too, for everyone
    result = drill(live_app, tmp_path, "--scenario", "primary-down", "--prompts", "2")
    assert result.returncode == 1, result.stderr
    data, markdown = report_of(tmp_path / "drills")
    assert data["verdict"] == "fail"
    tier = next(c for c in data["checks"] if c["name"] == "answering tier")
    assert tier["expected"] == "haiku" and tier["seen"] == "openai: 2"
    assert any(
        r.startswith("answering tier: expected haiku, saw openai: 2") for r in data["reasons"]
    )
    assert "openai (done)" in markdown and "# Drill primary-down: FAIL" in markdown
    assert drill_state(live_app.url, ADMIN_PASSWORD, data["drill_id"])["verdict"] == "fail"


def test_the_badge_check_catches_a_badge_other_than_the_chain_files(
    live_app: LiveApp, tmp_path: Path
) -> None:
    # The drill expects what its chain file says; the server shows what its own says.
    text = (
        chain_of(live_app)
        .read_text()
        .replace('badge = "fast mode (smaller model)"', 'badge = "lite mode"')
    )
    expected_chain = tmp_path / "chain.toml"
    expected_chain.write_text(text)
    result = drill(
        live_app, tmp_path, "--scenario", "primary-down", "--prompts", "1", chain=expected_chain
    )
    assert result.returncode == 1, result.stderr
    data, _ = report_of(tmp_path / "drills")
    badge = next(c for c in data["checks"] if c["name"] == "badge")
    assert not badge["passed"] and badge["expected"].startswith("`lite mode`")
    assert "`fast mode (smaller model)`" in badge["mismatches"][0]
    assert next(c for c in data["checks"] if c["name"] == "answering tier")["passed"]


def test_all_down_without_a_queue_holds_when_users_get_the_clear_error(
    live_app: LiveApp, tmp_path: Path
) -> None:
    result = drill(live_app, tmp_path, "--scenario", "all-down", "--prompts", "2")
    assert result.returncode == 0, result.stderr
    data, _ = report_of(tmp_path / "drills")
    assert data["errors"]["user_visible"] == 2  # foreseen: that is the hypothesis
    assert data["verdict"] == "pass"


def test_an_abort_ends_the_drill_and_its_faults_stop(live_app: LiveApp, tmp_path: Path) -> None:
    # Haiku and GPT-5.5 are down at the simulator: the drill's turns (Sonnet overloaded by the
    # drill, for every turn: instance-wide) fail, past --max-errors 0.
    live_app.set_fault(HAIKU, "status", status=529)
    live_app.set_fault(OPENAI, "status", status=503)
    result = drill(
        live_app,
        tmp_path,
        "--scenario",
        "primary-down",
        "--prompts",
        "6",
        "--concurrency",
        "1",
        "--max-errors",
        "0",
        "--instance-wide",
    )
    assert result.returncode == 1, result.stderr
    data, _ = report_of(tmp_path / "drills")
    assert data["aborted"] == "1 unforeseen user-visible errors (more than --max-errors 0)"
    assert data["sent"] == 1
    state = drill_state(live_app.url, ADMIN_PASSWORD, data["drill_id"])
    assert (state["running"], state["verdict"]) == (False, "aborted")
    live_app.clear_faults()
    assert plain_turn(live_app) == "sonnet"  # the instance-wide fault no longer applies


def test_p95_past_twice_the_sla_aborts(live_app: LiveApp, tmp_path: Path) -> None:
    # Haiku's first token takes at least 0.5 s at the simulator: twice a 0.1 s SLA, and more.
    live_app.set_profile(HAIKU, first_token_s=0.5)
    env = drill_env(tmp_path, chain_of(live_app), ADMIN_PASSWORD)
    args = ["--target", live_app.url, "--report-dir", str(tmp_path / "drills")]
    args += ["--scenario", "primary-down", "--prompts", "4", "--concurrency", "1"]
    result = run_drill([*args, "--ttft-p95", "0.1"], env, tmp_path, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 1, result.stderr
    data, _ = report_of(tmp_path / "drills")
    assert data["aborted"].startswith("p95 first token") and data["sent"] == 1
    assert "past twice its 0.1 s bound" in data["aborted"]


FIRST_TURN = re.compile(r"^  \[1/\d+\] ")


@pytest.mark.parametrize(
    ("how", "scenario", "after"),
    [(signal.SIGINT, "primary-down", FIRST_TURN), (signal.SIGTERM, "primary-hang", STARTED)],
    ids=["ctrl-c-between-turns", "sigterm-at-the-start"],
)
def test_ctrl_c_or_sigterm_ends_the_drill_and_its_faults_stop(
    live_app: LiveApp, tmp_path: Path, how: signal.Signals, scenario: str, after: re.Pattern[str]
) -> None:
    env = drill_env(tmp_path, chain_of(live_app), ADMIN_PASSWORD)
    args = ["--target", live_app.url, "--report-dir", str(tmp_path / "drills"), *GENEROUS]
    args += ["--scenario", scenario, "--prompts", "500", "--concurrency", "1", "--instance-wide"]
    with subprocess.Popen(
        [*drill_command(), *args],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as process:
        lines = Lines(process)
        drill_id = lines.wait_for(STARTED, timeout=RUN_TIMEOUT_S).group(2)
        if after is not STARTED:
            lines.wait_for(after, timeout=RUN_TIMEOUT_S)
        assert drill_state(live_app.url, ADMIN_PASSWORD, drill_id)["running"] is True
        process.send_signal(how)
        assert process.wait(RUN_TIMEOUT_S) == 2, "\n".join(lines.seen)
    state = drill_state(live_app.url, ADMIN_PASSWORD, drill_id)
    assert (state["running"], state["verdict"]) == (False, "aborted")
    assert plain_turn(live_app) == "sonnet"  # the instance-wide fault no longer applies
    data, _ = report_of(tmp_path / "drills")
    assert data["aborted"].startswith("interrupted") and data["sent"] < 500
    assert data["reasons"][0].startswith("aborted: interrupted")


def test_a_wrong_password_or_no_target_cannot_run(live_app: LiveApp, tmp_path: Path) -> None:
    env = drill_env(tmp_path, chain_of(live_app), "not-the-password")
    args = ["--target", live_app.url, "--scenario", "primary-down", "--prompts", "1"]
    result = run_drill(args, env, tmp_path, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 2, result.stderr
    assert "UNDERSTUDY_ADMIN_PASSWORD is not the target's admin password" in result.stderr
    assert "Traceback" not in result.stderr and "not-the-password" not in result.stderr

    closed = "http://127.0.0.1:1"
    args = ["--target", closed, "--scenario", "primary-down", "--prompts", "1"]
    result = run_drill(args, env, tmp_path, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 2, result.stderr
    assert f"cannot reach {closed}" in result.stderr

    del env["UNDERSTUDY_ADMIN_PASSWORD"]
    result = run_drill(
        ["--target", live_app.url, "--scenario", "all-down"], env, tmp_path, timeout=RUN_TIMEOUT_S
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("understudy: configuration error: UNDERSTUDY_ADMIN")
