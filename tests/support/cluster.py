"""Several `understudy serve` processes as one app: one PostgreSQL database, one Redis, one
simulator (`understudy sim`, a process of its own so that it outlives any server).

Each server has its own data folder (as on separate machines); they share what a deployment of
several machines must share: the database, Redis (under a key prefix unique to this cluster,
since other test runs use the same Redis), the session signing key and the admin password.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import secrets
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest
import redis
from conftest import FAST_PROFILE, LiveApp, start_live_app

from support.database import create_pg_database, drop_pg_database
from support.sim_control import Sim, running_sim

REDIS_URL = "redis://127.0.0.1:6379/0"
T = TypeVar("T")


def _in_thread(call: Callable[[], T]) -> T:
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis at {REDIS_URL} is not reachable ({exc!r})")


@dataclass
class Cluster:
    sim: Sim
    database_url: str
    redis_prefix: str
    base: Path
    env: dict[str, str]
    servers: list[LiveApp] = field(default_factory=list)

    def start(self, extra_env: Mapping[str, str] | None = None) -> LiveApp:
        """One more `understudy serve` in the cluster, with its own data folder."""
        base = self.base / f"server{len(self.servers)}"
        base.mkdir()
        server = start_live_app(base, env={**self.env, **(extra_env or {})})
        server.database_url = self.database_url
        self.servers.append(server)
        return server

    def reset(self) -> None:
        self.sim.clear_faults()
        self.sim.set_profile("*", **FAST_PROFILE)

    def close(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    """Start servers with ``cluster.start()``; each test gets a fresh database and prefix.

    The lease is short (2 s), so a killed server's turns are interrupted within seconds."""
    with running_cluster() as made:
        yield made


@pytest.fixture(scope="module")
def two_servers() -> Iterator[Cluster]:
    """Two servers started once for a module's tests (which must not stop them); each test
    resets the simulator with :meth:`Cluster.reset`."""
    with running_cluster() as made:
        made.start()
        made.start()
        yield made


@contextlib.contextmanager
def running_cluster() -> Iterator[Cluster]:
    redis_or_skip()
    base = Path(tempfile.mkdtemp(prefix="understudy-cluster-"))
    # In a thread: these run their own event loop, and a browser test's thread already has one.
    database_url = _in_thread(create_pg_database)
    with running_sim(base) as sim:
        sim.set_profile("*", **FAST_PROFILE)
        prefix = f"understudy-test-{uuid.uuid4().hex[:12]}:"
        env = {
            "UNDERSTUDY_SIM_URL": sim.url,
            "UNDERSTUDY_DATABASE_URL": database_url,
            "UNDERSTUDY_REDIS_URL": REDIS_URL,
            "UNDERSTUDY_REDIS_PREFIX": prefix,
            "UNDERSTUDY_SECRET_KEY": secrets.token_urlsafe(32),
            "UNDERSTUDY_LEASE_S": "2",
        }
        made = Cluster(sim, database_url, prefix, base, env)
        try:
            yield made
        finally:
            made.close()
            _in_thread(lambda: drop_pg_database(database_url))
            client = redis.Redis.from_url(REDIS_URL)
            for key in client.scan_iter(match=f"{prefix}*"):
                client.delete(key)
            client.close()
