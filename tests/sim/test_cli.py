"""`understudy sim --port P` serves the model endpoints and the control routes on one port."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx

from .conftest import HAIKU, bounded

UNDERSTUDY = Path(sys.executable).with_name("understudy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@bounded(15)
async def test_understudy_sim_serves_until_interrupted() -> None:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(UNDERSTUDY),
        "sim",
        "--port",
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 10)).decode()
        assert f"simulated upstream on http://127.0.0.1:{port}" in line
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2) as client:
            assert (await client.get("/faults")).json() == []
            reply = await client.post(
                "/anthropic/v1/messages",
                headers={"x-api-key": "k"},
                json={
                    "model": HAIKU,
                    "max_tokens": 3,
                    "messages": [{"role": "user", "content": "x"}],
                },
            )
            assert reply.status_code == 200
            assert [e["outcome"] for e in (await client.get("/requests")).json()] == ["ok"]
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 5) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
