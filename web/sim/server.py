"""The simulated upstream: Anthropic Messages, OpenAI Chat Completions and Gemini generateContent
on one raw HTTP/1.1 port.

    POST /anthropic/v1/messages          AsyncAnthropic(base_url=f"{url}/anthropic")
    POST /openai/v1/chat/completions     AsyncOpenAI(base_url=f"{url}/openai/v1")
    /anthropic/v1/messages/batches[/{id}[/results|/cancel]]   Message Batches (web.sim.batches)
    POST /gemini/v1beta/models/{model}:streamGenerateContent?alt=sse   (and :generateContent)
                                         genai.Client(http_options=HttpOptions(
                                             base_url=f"{url}/gemini/", api_version="v1beta"))
    /faults, /requests, /models          the control routes (see web.sim.control)

This module owns the listener and the connections (keep-alive, clean shutdown); one model request
is an Exchange (web.sim.exchange). It is built on `asyncio.start_server`, not ASGI, so that a reset before
any byte and a body without its terminating chunk happen exactly as they do in the wild.

Its control routes answer any client that reaches the port it was started on, but only for a
``Host`` that is loopback, an IP address or that host (421 otherwise): a web page whose name was
rebound to 127.0.0.1 must not set faults on a simulator that listens there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from types import TracebackType
from typing import Any

from web.sim.access import SimAccess
from web.sim.anthropic_wire import AnthropicWire
from web.sim.batches import BatchAPI, is_batches_path
from web.sim.control import ControlAPI, control_app, is_control_path
from web.sim.exchange import Exchange
from web.sim.fault_registry import FaultRegistry
from web.sim.faults import Clock
from web.sim.gemini_wire import GeminiWire, model_in_path
from web.sim.http import (
    BadRequest,
    Request,
    head,
    json_response,
    read_request,
)
from web.sim.openai_wire import OpenAIWire
from web.sim.profiles import ModelProfile, Profiles
from web.sim.requestlog import RequestLog
from web.sim.wire import Dialect

__all__ = ["ModelProfile", "SimServer", "control_app", "run_sim"]

logger = logging.getLogger(__name__)

DIALECTS: dict[str, Dialect] = {
    "/anthropic/v1/messages": AnthropicWire(),
    "/openai/v1/chat/completions": OpenAIWire(),
}
GEMINI = GeminiWire()


def dialect_for(path: str) -> Dialect | None:
    """The wire format a model path speaks: by the whole path, or Gemini's model-in-path."""
    path = path.rstrip("/")
    return DIALECTS.get(path) or (GEMINI if model_in_path(path) else None)


class SimServer:
    """``clock`` is the fault registry's (see :class:`FaultRegistry`), shared by the model
    endpoints and both control APIs; the replies' own pacing runs on the event loop."""

    def __init__(
        self,
        *,
        profiles: dict[str, ModelProfile] | None = None,
        default_profile: ModelProfile | None = None,
        registry: FaultRegistry | None = None,
        log: RequestLog | None = None,
        clock: Clock | None = None,
    ) -> None:
        if registry is not None and clock is not None:
            raise ValueError("pass the clock to the FaultRegistry, or pass no registry")
        self.profiles = Profiles(profiles, default_profile)
        if registry is None:
            registry = FaultRegistry() if clock is None else FaultRegistry(clock)
        self.registry = registry
        self.log = log if log is not None else RequestLog()
        self.url = ""
        self._control = ControlAPI(self)
        self.batches = BatchAPI(self)
        self._server: asyncio.Server | None = None
        self._access = SimAccess(expose=True)
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def open_connections(self) -> int:
        """Connections being served right now (hung and stalled ones included)."""
        return len(self._tasks)

    def set_profile(self, model: str, **fields: Any) -> ModelProfile:
        """Change a model's profile ("*": the default and every model's own)."""
        return self.profiles.set(model, **fields)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = await asyncio.start_server(self._connection, host, port)
        self._access = SimAccess(expose=True, served_host=host)
        bound_host, bound_port = self._server.sockets[0].getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"

    async def stop(self) -> None:
        """Close the listener and every open connection, hung and stalled ones included."""
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> SimServer:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # stop() cancels the inner task, never the one asyncio's start_server watches: on 3.11 a
        # cancelled handler task makes asyncio log a spurious "Exception in callback".
        inner = asyncio.ensure_future(self._serve_connection(reader, writer))
        self._tasks.add(inner)
        try:
            await asyncio.shield(inner)
        except asyncio.CancelledError:
            if not inner.done():
                inner.cancel()
                raise
        finally:
            self._tasks.discard(inner)

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            while True:
                try:
                    request = await read_request(reader)
                except (BadRequest, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as exc:
                    writer.write(json_response(400, {"error": str(exc)}, keep_alive=False))
                    break
                if request is None:
                    break
                if not await self._dispatch(request, reader, writer) or not request.keep_alive:
                    break
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except ConnectionError:
            pass  # the client went away; nothing to answer
        except Exception:
            logger.exception("simulator connection failed")
        finally:
            writer.close()

    async def _dispatch(
        self, request: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        """Answer one request; False when the connection must not be reused."""
        if is_batches_path(request.path):
            answer = await self.batches.handle(request)
            writer.write(
                head(
                    answer.status,
                    answer.headers,
                    keep_alive=request.keep_alive,
                    length=len(answer.body),
                )
                + answer.body
            )
            return True
        dialect = dialect_for(request.path)
        if dialect is not None:
            if request.method != "POST":
                writer.write(
                    json_response(405, {"error": "use POST"}, keep_alive=request.keep_alive)
                )
                return True
            return await Exchange(self, dialect, request, reader, writer).run()
        if is_control_path(request.path):
            refused = self._access.refusal(None, request.headers.get("host"))
            if refused is not None:
                payload = {"error": refused.message}
                writer.write(json_response(refused.status, payload, keep_alive=request.keep_alive))
                return True
            reply = self._control.handle(
                request.method,
                request.path,
                request.body,
                request.query,
                content_type=request.headers.get("content-type", ""),
            )
            writer.write(json_response(reply.status, reply.payload, keep_alive=request.keep_alive))
            return True
        writer.write(
            json_response(404, {"error": f"no route {request.path}"}, keep_alive=request.keep_alive)
        )
        return True


def run_sim(host: str, port: int) -> int:
    """Serve the simulator until Ctrl-C or SIGTERM (``understudy sim``)."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(host, port))
    return 0


async def _serve(host: str, port: int) -> None:
    sim = SimServer()
    await sim.start(host, port)
    logger.info(
        "simulated upstream on %s  (anthropic base_url %s/anthropic, openai base_url %s/openai/v1, "
        "gemini base_url %s/gemini/, control: %s/faults /requests /models)",
        sim.url,
        sim.url,
        sim.url,
        sim.url,
        sim.url,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopping.set)
    try:
        await stopping.wait()
    finally:
        await sim.stop()
        logger.info("simulated upstream stopped")
