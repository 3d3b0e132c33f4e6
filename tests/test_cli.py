"""`understudy` as a user runs it: configuration mistakes end in one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from web.db.migrate import head_revision

UNDERSTUDY = Path(sys.executable).with_name("understudy")
PASSWORD = "Hunter2-cli-secret"
CLOSED_PORT_URL = f"postgresql+asyncpg://postgres:{PASSWORD}@127.0.0.1:1/x"


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("UNDERSTUDY_") and not k.endswith("_API_KEY")
    }
    env["UNDERSTUDY_DATA_DIR"] = str(tmp_path / "data")
    env.update(extra)
    return subprocess.run(
        [str(UNDERSTUDY), *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def _assert_one_line_config_error(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode == 2, result.stderr
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert PASSWORD not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("understudy: configuration error: ")
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize("command", [["db", "upgrade"], ["serve", "--port", "0"]])
def test_an_unreachable_database_is_one_line_naming_it_and_the_setting(
    tmp_path: Path, command: list[str]
) -> None:
    result = _run(command, tmp_path, UNDERSTUDY_DATABASE_URL=CLOSED_PORT_URL)
    _assert_one_line_config_error(
        result, "postgresql+asyncpg://postgres:***@127.0.0.1:1/x", "UNDERSTUDY_DATABASE_URL"
    )
    assert "Understudy is running" not in result.stdout


def test_serve_refuses_a_data_folder_it_cannot_create(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = _run(["serve", "--port", "0"], tmp_path, UNDERSTUDY_DATA_DIR=str(blocker / "data"))
    _assert_one_line_config_error(result, str(blocker / "data"), "UNDERSTUDY_DATA_DIR")


def test_the_log_commands_work_with_a_broken_chain_file(tmp_path: Path) -> None:
    broken = tmp_path / "chain.toml"
    broken.write_text("[[tiers]\n", encoding="utf-8")
    upgraded = _run(["db", "upgrade"], tmp_path, UNDERSTUDY_CHAIN=str(broken))
    assert upgraded.returncode == 0, upgraded.stderr
    assert head_revision() in upgraded.stdout
    listed = _run(["turns", "--json"], tmp_path, UNDERSTUDY_CHAIN=str(broken))
    assert listed.returncode == 0, listed.stderr
    served = _run(["serve", "--port", "0"], tmp_path, UNDERSTUDY_CHAIN=str(broken))
    _assert_one_line_config_error(served, "chain.toml")


def test_worker_alone_needs_keys_or_a_simulator(tmp_path: Path) -> None:
    result = _run(["worker"], tmp_path)
    _assert_one_line_config_error(result, "UNDERSTUDY_SIM_URL", "understudy serve")


def test_worker_alone_needs_a_deferral_table(tmp_path: Path) -> None:
    chain = tmp_path / "chain.toml"
    chain.write_text(
        '[[tiers]]\nname = "a"\nprovider = "openai"\nmodel = "m"\nlabel = "A"\n'
        'api_key_env = "OPENAI_API_KEY"\n'
    )
    result = _run(
        ["worker"], tmp_path, UNDERSTUDY_CHAIN=str(chain), UNDERSTUDY_SIM_URL="http://127.0.0.1:1"
    )
    _assert_one_line_config_error(result, "no [deferral] table")


def test_serve_refuses_several_workers_without_redis(tmp_path: Path) -> None:
    result = _run(["serve", "--port", "0", "--workers", "2"], tmp_path)
    _assert_one_line_config_error(
        result, "--workers 2 needs UNDERSTUDY_REDIS_URL", "another process than the one running"
    )
    assert "Understudy is running" not in result.stdout
