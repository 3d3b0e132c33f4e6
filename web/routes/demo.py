"""The demo's "Simulate outage" panel: take any tier down through the simulator's fault API.

Shown only in demo mode (every tier points at the simulator). Each tier has one mode at a time;
choosing one replaces that model's faults. The faults go through the simulator's own control API
(``{sim_url}/faults``), so the panel works the same for the embedded simulator and for one started
with `understudy sim`, and what it sets is exactly what `curl .../_sim/faults` would show.

A tier's mode is about its synchronous API (``"api": "sync"``): the faults the panel sets never
hit the simulator's Message Batches endpoints, so with every tier down a reply can still be
queued and land through the deferral; batch faults set some other way are not a tier's mode.

    POST /demo/outage           tier=<name>, mode=rate_limited|overloaded|hang|cut|healthy
    POST /demo/outage/all-down  every tier overloaded ("All tiers down"), synchronous API only
    POST /demo/outage/reset     every tier healthy ("Reset all"): removes each fault that hits a
                                tier (its model's, or one for every model, "*"; either API), and
                                leaves faults set on other models of a shared simulator alone

Like /_sim, the panel is for loopback clients only unless UNDERSTUDY_EXPOSE_SIM=1 (web.sim.access):
other visitors neither see it nor can post to it (403; a Host that is not loopback: 421).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from web.deps import CSRF, SettingsDep, is_htmx, state_of, templates_of
from web.errors import AppError, Invalid, NotFound
from web.settings import Settings, TierConfig
from web.sim.access import Refusal

log = logging.getLogger(__name__)

router = APIRouter(prefix="/demo")

HEALTHY = "healthy"
EVERY_MODEL = "*"
SYNC_API = "sync"
"""The simulator's Messages, Chat Completions and generateContent endpoints (not the batches)."""
ALL_DOWN_MODE = "overloaded"
CUT_AFTER_TOKENS = 12
SIM_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class Mode:
    key: str
    label: str
    fault: Callable[[TierConfig], dict[str, Any]]
    matches: Callable[[dict[str, Any]], bool]


def _overloaded_status(tier: TierConfig) -> int:
    # Anthropic says 529 overloaded_error; OpenAI has no such status and answers 503, and so
    # does Gemini (UNAVAILABLE, "the model is overloaded").
    return 529 if tier.provider == "anthropic" else 503


MODES = (
    Mode(
        "rate_limited",
        "rate limited",
        lambda tier: {"kind": "status", "status": 429},
        lambda f: f["kind"] == "status" and f.get("status") == 429,
    ),
    Mode(
        "overloaded",
        "overloaded",
        lambda tier: {"kind": "status", "status": _overloaded_status(tier)},
        lambda f: f["kind"] == "status" and f.get("status") in (503, 529),
    ),
    Mode("hang", "hang", lambda tier: {"kind": "hang"}, lambda f: f["kind"] == "hang"),
    Mode(
        "cut",
        "cut mid-reply",
        lambda tier: {"kind": "cut", "after_tokens": CUT_AFTER_TOKENS},
        lambda f: f["kind"] == "cut",
    ),
)
MODES_BY_KEY = {m.key: m for m in MODES}
HEALTHY_LABEL = "healthy again"
ALL_DOWN_LABEL = "All tiers down"
ALL_DOWN_HINT = "overloads every tier"
ALL_DOWN_TITLE = (
    "Every tier's synchronous API answers overloaded; the Message Batches API still works, "
    "so the next reply is queued and lands when its batch is done."
)


@dataclass(frozen=True)
class TierRow:
    name: str
    label: str
    primary: bool
    mode: str
    """A key of MODES, "healthy", or "other" (a fault set some other way)."""

    @property
    def state_label(self) -> str:
        if self.mode == HEALTHY:
            return "healthy"
        mode = MODES_BY_KEY.get(self.mode)
        return mode.label if mode else "custom fault"


@dataclass(frozen=True)
class OutagePanel:
    rows: tuple[TierRow, ...]
    modes: tuple[Mode, ...] = MODES
    healthy_label: str = HEALTHY_LABEL
    all_down_label: str = ALL_DOWN_LABEL
    all_down_hint: str = ALL_DOWN_HINT
    all_down_title: str = ALL_DOWN_TITLE
    error: str | None = None

    @property
    def down(self) -> int:
        """Tiers with a fault: said in the panel's summary, seen even when it is folded."""
        return sum(row.mode != HEALTHY for row in self.rows)


class SimUnavailable(AppError):
    status = 502
    title = "Simulator unavailable"


class SimRefused(AppError):
    status = 403
    title = "Refused"

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.message)
        self.status = refusal.status


def _refusal(request: Request) -> Refusal | None:
    client = request.client.host if request.client else None
    return state_of(request).sim_access.refusal(client, request.headers.get("host"))


def sim_client(sim_url: str) -> httpx.AsyncClient:
    """The one client for the simulator's control API (made once: a new client costs ~20 ms of
    CPU for its TLS context, which every page load would otherwise pay)."""
    return httpx.AsyncClient(base_url=sim_url.rstrip("/"), timeout=SIM_TIMEOUT_S)


def _client(request: Request) -> httpx.AsyncClient:
    state = state_of(request)
    if state.sim_client is None or not state.demo_mode:
        raise NotFound("The outage panel exists only in demo mode (no API keys set).")
    refusal = _refusal(request)
    if refusal is not None:
        raise SimRefused(refusal)
    return state.sim_client


async def _faults(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    reply = await client.get("/faults")
    reply.raise_for_status()
    faults: list[dict[str, Any]] = reply.json()
    return faults


def _mode_of(faults: list[dict[str, Any]]) -> str:
    if not faults:
        return HEALTHY
    for mode in MODES:
        if mode.matches(faults[0]):
            return mode.key
    return "other"


def _hits(fault: dict[str, Any], tier: TierConfig) -> bool:
    return fault.get("model") in (tier.model, EVERY_MODEL)


def _is_sync(fault: dict[str, Any]) -> bool:
    # The simulator leaves "api" out of a synchronous fault.
    return bool(fault.get("api", SYNC_API) == SYNC_API)


def _fault(tier: TierConfig, mode_key: str) -> dict[str, Any]:
    return {
        "model": tier.model,
        **MODES_BY_KEY[mode_key].fault(tier),
        "count": None,
        "api": SYNC_API,
    }


def _panel(settings: Settings, faults: list[dict[str, Any]]) -> OutagePanel:
    rows = tuple(
        TierRow(
            name=tier.name,
            label=tier.label,
            primary=index == 0,
            mode=_mode_of([f for f in faults if _hits(f, tier) and _is_sync(f)]),
        )
        for index, tier in enumerate(settings.tiers)
    )
    return OutagePanel(rows=rows)


async def outage_context(request: Request) -> OutagePanel | None:
    """The panel for the chat page, or None outside demo mode."""
    state = state_of(request)
    if state.sim_client is None or not state.demo_mode or _refusal(request) is not None:
        return None
    try:
        faults = await _faults(state.sim_client)
    except httpx.HTTPError as exc:
        log.warning("outage panel: cannot read the simulator's faults: %s", exc)
        return OutagePanel(rows=(), error="The simulator is not answering.")
    return _panel(state.settings, faults)


async def _apply(
    client: httpx.AsyncClient, tier: TierConfig, mode_key: str
) -> list[dict[str, Any]]:
    try:
        for fault in await _faults(client):
            if fault.get("model") == tier.model and _is_sync(fault):
                await _delete(client, fault)
        if mode_key != HEALTHY:
            (await client.post("/faults", json=_fault(tier, mode_key))).raise_for_status()
        return await _faults(client)
    except httpx.HTTPError as exc:
        log.warning("outage panel: the simulator refused %s for %s: %s", mode_key, tier.name, exc)
        raise SimUnavailable(f"The simulator did not accept the change ({exc}).") from None


async def _delete(client: httpx.AsyncClient, fault: dict[str, Any]) -> None:
    gone = await client.delete(f"/faults/{fault['id']}")
    if gone.status_code != 404:  # 404: used up meanwhile, gone all the same
        gone.raise_for_status()


def _respond(request: Request, panel: OutagePanel) -> Response:
    if not is_htmx(request):
        return RedirectResponse(request.headers.get("referer") or "/", status_code=303)
    return templates_of(request).TemplateResponse(request, "_outage_panel.html", {"outage": panel})


@router.post("/outage", dependencies=CSRF)
async def set_outage(
    request: Request,
    settings: SettingsDep,
    tier: Annotated[str, Form()] = "",
    mode: Annotated[str, Form()] = "",
) -> Response:
    client = _client(request)
    config = next((t for t in settings.tiers if t.name == tier), None)
    if config is None:
        raise Invalid(f"There is no tier named {tier!r}.")
    if mode != HEALTHY and mode not in MODES_BY_KEY:
        choices = ", ".join([*MODES_BY_KEY, HEALTHY])
        raise Invalid(f"Unknown outage mode {mode!r}; choose one of {choices}.")
    faults = await _apply(client, config, mode)
    log.info("demo: tier %s is now %s", tier, mode)
    return _respond(request, _panel(settings, faults))


@router.post("/outage/reset", dependencies=CSRF)
async def reset_outages(request: Request, settings: SettingsDep) -> Response:
    client = _client(request)
    try:
        for fault in await _faults(client):
            if any(_hits(fault, tier) for tier in settings.tiers):
                await _delete(client, fault)
        faults = await _faults(client)
    except httpx.HTTPError as exc:
        log.warning("outage panel: the simulator refused Reset all: %s", exc)
        raise SimUnavailable(f"The simulator did not accept the change ({exc}).") from None
    log.info("demo: every tier is healthy again")
    return _respond(request, _panel(settings, faults))


@router.post("/outage/all-down", dependencies=CSRF)
async def all_tiers_down(request: Request, settings: SettingsDep) -> Response:
    """Every tier's synchronous API overloaded at once, so that the chain runs out of tiers and a
    reply is queued (the batches, which the deferral uses, stay as they are)."""
    client = _client(request)
    models = {tier.model for tier in settings.tiers}
    try:
        for fault in await _faults(client):
            if fault.get("model") in models and _is_sync(fault):
                await _delete(client, fault)
        for tier in {t.model: t for t in settings.tiers}.values():  # one fault per model
            (await client.post("/faults", json=_fault(tier, ALL_DOWN_MODE))).raise_for_status()
        faults = await _faults(client)
    except httpx.HTTPError as exc:
        log.warning("outage panel: the simulator refused All tiers down: %s", exc)
        raise SimUnavailable(f"The simulator did not accept the change ({exc}).") from None
    log.info("demo: every tier is down (overloaded)")
    return _respond(request, _panel(settings, faults))
