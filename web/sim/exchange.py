"""One model request and its response: auth, body, model, fault plan, context window, reply.

The fault plan (web.sim.faults) says what goes wrong; the dialect (one module per wire format)
says which bytes carry it. Timing follows the model's profile: the first token `first_token_s`
after the request, then one token every 1/`tokens_per_s` seconds.

The embedded simulator shares the app's event loop, so an exchange does no more work than the
request asks for (at most `max_tokens` tokens are made, see web.sim.replies.first_tokens), does a
long reply's making and encoding in a thread, and gives the loop a turn every few deltas of a
stream too fast to sleep between them.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from web.sim.faults import Plan
from web.sim.http import LAST_CHUNK, Request, chunk, head, reset
from web.sim.replies import first_tokens
from web.sim.requestlog import LoggedRequest
from web.sim.wire import Dialect, InvalidCall, ModelCall, Reply, compact_json, random_id

if TYPE_CHECKING:
    from web.sim.server import SimServer

MESSAGE_ID_PREFIX = {"anthropic": ("msg_01", 22), "openai": ("chatcmpl-", 29)}
"""The body's message id; a format without one of its own (Gemini) uses the request id."""
INLINE_TOKENS = 2_000
"""Replies up to this many tokens are made on the event loop (~1.5 ms); longer ones in a thread."""
YIELD_EVERY = 64
"""Deltas written without a sleep between them before the stream gives the event loop a turn."""


class Exchange:
    """One model request and its response, faults included."""

    def __init__(
        self,
        sim: SimServer,
        dialect: Dialect,
        request: Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.sim = sim
        self.dialect = dialect
        self.request = request
        self.reader = reader
        self.writer = writer
        self.loop = asyncio.get_running_loop()
        self.started = self.loop.time()
        self.request_id = dialect.new_request_id()
        if dialect.provider in MESSAGE_ID_PREFIX:
            prefix, length = MESSAGE_ID_PREFIX[dialect.provider]
            self.message_id = random_id(prefix, length)
        else:
            self.message_id = self.request_id

    async def run(self) -> bool:
        dialect, rid = self.dialect, self.request_id
        if not dialect.has_key(self.request):
            return self._reply(None, dialect.unauthorized(rid))
        try:
            call = dialect.parse(self.request, rid)
        except InvalidCall as exc:
            return self._reply(None, exc.reply)
        if not self.sim.profiles.knows(call.model):
            return self._reply(call, dialect.unknown_model(call.model, rid))
        profile = self.sim.profiles.get(call.model)
        plan = self.sim.registry.take(call.model, stream=call.stream)
        if plan.drop == "reset":
            self._log(call, plan, None)
            reset(self.writer)
            return False
        if plan.drop == "hang":
            self._log(call, plan, None)
            await self.reader.read()  # until the client gives up (or stop() cancels us)
            return False
        if plan.status is not None:
            status_reply = dialect.error(
                plan.status,
                rid,
                error_type=plan.error_type,
                message=plan.message,
                code=plan.code,
                retry_after=plan.retry_after,
            )
            return self._reply(call, status_reply, plan)
        if call.input_tokens > profile.context_window:
            return self._reply(call, dialect.context_too_long(call, profile.context_window, rid))
        reply = (call.model, call.prompt, profile.reply_tokens, call.max_tokens)
        if min(profile.reply_tokens, call.max_tokens or profile.reply_tokens) <= INLINE_TOKENS:
            tokens, stop = first_tokens(*reply)
        else:
            tokens, stop = await asyncio.to_thread(first_tokens, *reply)
        first_token_s = (
            plan.first_token_s if plan.first_token_s is not None else profile.first_token_s
        )
        first_at = self.started + first_token_s
        interval = 1.0 / profile.tokens_per_s
        if call.stream:
            self._log(call, plan, 200)
            return await self._stream(call, plan, tokens, stop, first_at, interval)
        error = self._non_stream_error(plan)
        self._log(call, plan, 200 if error is None else error.status)
        return await self._complete(
            call, plan, tokens, stop, first_at + len(tokens) * interval, error
        )

    def _reply(self, call: ModelCall | None, reply: Reply, plan: Plan | None = None) -> bool:
        outcome = plan.outcome if plan is not None else f"error:{reply.status}"
        self._log(call, plan or Plan(outcome=outcome), reply.status)
        return self._send(reply)

    def _send(self, reply: Reply) -> bool:
        self.writer.write(
            head(
                reply.status,
                reply.headers,
                keep_alive=self.request.keep_alive,
                length=len(reply.body),
            )
            + reply.body
        )
        return True

    def _log(self, call: ModelCall | None, plan: Plan, status: int | None) -> None:
        model = call.model if call is not None else self.dialect.model_of(self.request)
        stream = call.stream if call is not None else False
        self.sim.log.add(
            LoggedRequest(
                provider=self.dialect.provider,
                model=model,
                stream=stream,
                outcome=plan.outcome,
                status=status,
                request_id=self.request_id,
                fault_id=plan.fault_id,
            )
        )

    async def _sleep_until(self, deadline: float) -> bool:
        """Sleep until `deadline` on the loop's clock; False when it is (nearly) past already."""
        delay = deadline - self.loop.time()
        if delay > 0.0005:
            await asyncio.sleep(delay)
            return True
        return False

    def _non_stream_error(self, plan: Plan) -> Reply | None:
        """error_event without a stream: the HTTP error the provider sends for that type."""
        if plan.break_how != "error":
            return None
        error_type = plan.error_type or self.dialect.default_error_type
        return self.dialect.error(
            self.dialect.status_for(error_type),
            self.request_id,
            error_type=error_type,
            message=plan.message,
        )

    async def _complete(
        self,
        call: ModelCall,
        plan: Plan,
        tokens: list[str],
        stop: bool,
        done_at: float,
        error: Reply | None,
    ) -> bool:
        dialect = self.dialect
        await self._sleep_until(done_at)
        if error is not None:
            return self._send(error)
        if len(tokens) <= INLINE_TOKENS:
            body = self._body(call, tokens, stop)
        else:
            body = await asyncio.to_thread(self._body, call, tokens, stop)
        headers = {"content-type": "application/json", **dialect.id_header(self.request_id)}
        if plan.outcome == "malformed":
            body = body[: len(body) // 2]
        keep_alive = self.request.keep_alive and plan.break_how is None
        self.writer.write(head(200, headers, keep_alive=keep_alive, length=len(body)))
        if plan.break_how is None:
            self.writer.write(body)
            return True
        # cut / stall: the promised Content-Length never arrives.
        self.writer.write(body[: len(body) // 2])
        await self.writer.drain()
        if plan.break_how == "stall":
            await asyncio.sleep(plan.stall_s)
        self.writer.close()
        return False

    def _body(self, call: ModelCall, tokens: list[str], stop: bool) -> bytes:
        message = self.dialect.message(call, "".join(tokens), len(tokens), stop, self.message_id)
        return compact_json(message).encode()

    async def _stream(
        self,
        call: ModelCall,
        plan: Plan,
        tokens: list[str],
        stop: bool,
        first_at: float,
        interval: float,
    ) -> bool:
        dialect, writer = self.dialect, self.writer
        malformed_at = plan.malformed_event
        if malformed_at is None and plan.malformed_after is not None:
            malformed_at = dialect.preamble_events + plan.malformed_after + 1
        events = 0

        def emit(frame: bytes, text: str = "") -> None:
            nonlocal events
            events += 1
            writer.write(chunk(dialect.stream_malformed(text) if events == malformed_at else frame))

        writer.write(
            head(200, dialect.stream_headers(self.request_id), keep_alive=self.request.keep_alive)
        )
        for frame in dialect.stream_start(call, self.message_id):
            emit(frame)
        if dialect.ping is not None:
            writer.write(chunk(dialect.ping))
        await writer.drain()
        count = len(tokens) if plan.break_after is None else min(plan.break_after, len(tokens))
        unslept = 0
        for index, token in enumerate(tokens[:count]):
            if await self._sleep_until(first_at + index * interval):
                unslept = 0
            else:
                unslept += 1
                if unslept % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            emit(dialect.stream_delta(call, self.message_id, token), token)
            await writer.drain()
        if plan.break_how in ("cut", "stall"):
            if plan.break_how == "stall":
                await asyncio.sleep(plan.stall_s)
            writer.close()  # FIN inside the chunked body: no terminating chunk
            return False
        if plan.break_how == "error":
            error_type = plan.error_type or dialect.default_error_type
            writer.write(chunk(dialect.stream_error(error_type, plan.message, self.request_id)))
        else:
            for frame in dialect.stream_end(
                call, self.message_id, len(tokens), stop, plan.terminated, plan.keep_tail
            ):
                emit(frame)
            if plan.hold_s:
                await writer.drain()
                await asyncio.sleep(plan.hold_s)
        writer.write(LAST_CHUNK)
        await writer.drain()
        return True
