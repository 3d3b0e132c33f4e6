"""What the chain's policy makes of a scenario's faults (web.drill.expect), on the default chain
and on chains that change the answer: who answers, the badge, the sentence, the bound."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from web.deferral import DEFERRAL_TIER, Deferral
from web.drill.expect import Expectation, expect, sla_of
from web.drill.scenarios import BY_NAME, hypothesis
from web.events import AttemptRecord, tier_infos
from web.providers.base import ErrorKind
from web.settings import DEFAULT_CHAIN_FILE, Settings, TierConfig, load_chain_file
from web.sla_config import DEFAULT_SLA, SLA
from web.status import AttemptOutcome, HedgeRole, ReplyState
from web.wording import (
    clock_time,
    degraded_reason,
    exhausted_message,
    generated_via,
    queued_for,
    queued_reason,
)

TIERS, DEFERRAL_CONFIG = load_chain_file(DEFAULT_CHAIN_FILE)
INFOS = {t.name: t for t in tier_infos(TIERS)}
NOON = 1_796_212_800.0  # a Unix time on a whole minute


def deferral_of(tiers: tuple[TierConfig, ...] = TIERS) -> Deferral:
    settings = replace(Settings.from_env({}), tiers=tiers, deferral=DEFERRAL_CONFIG)
    found = Deferral.from_settings(settings)
    assert found is not None
    return found


def failed(tier: str, kind: ErrorKind, *, after_text: bool = False) -> AttemptRecord:
    return AttemptRecord(
        tier=INFOS[tier],
        attempt=1,
        started_at=0.0,
        elapsed_s=0.0,
        ttft_s=None,
        outcome=AttemptOutcome.FAILED,
        error_kind=kind,
        after_text=after_text,
    )


def run(
    name: str,
    tiers: tuple[TierConfig, ...] = TIERS,
    *,
    deferral: Deferral | None = None,
    instance_wide: bool = False,
) -> Expectation:
    faults = BY_NAME[name].faults(tiers)
    return expect(tiers, faults, deferral=deferral, deadline_s=120.0, instance_wide=instance_wide)


def test_a_revoked_key_is_answered_by_the_first_tier_with_another_key() -> None:
    expectation = run("primary-key-revoked")
    shown = expectation.expected()
    # Sonnet's 401 rules out Haiku (same ANTHROPIC_API_KEY): GPT-5.5, not Haiku, answers.
    assert shown.tier == "openai"
    assert (shown.badge, shown.title) == ("fallback provider", generated_via("GPT-5.5"))
    assert shown.reason == degraded_reason(INFOS["openai"], [failed("sonnet", ErrorKind.AUTH)])


def test_primary_down_is_answered_by_haiku_in_fast_mode() -> None:
    shown = run("primary-down").expected()
    assert (shown.tier, shown.state, shown.badge) == (
        "haiku",
        ReplyState.DONE,
        "fast mode (smaller model)",
    )
    assert shown.reason == degraded_reason(INFOS["haiku"], [failed("sonnet", ErrorKind.OVERLOADED)])


def test_a_hang_costs_every_message_the_primarys_first_token_timeout() -> None:
    expectation = run("primary-hang")
    assert expectation.expected().reason == degraded_reason(
        INFOS["haiku"], [failed("sonnet", ErrorKind.TIMEOUT)]
    )
    bound = expectation.bound
    assert bound is not None and bound.tier.name == "haiku"
    sonnet_timeout = TIERS[0].timeouts.first_token_s
    haiku_sla = TIERS[1].sla or DEFAULT_SLA  # the chain file's, else the defaults
    assert bound.ttft_s == sonnet_timeout + haiku_sla.ttft_p95_s
    assert bound.total_s == sonnet_timeout + haiku_sla.total_p95_s
    assert "first-token timeout" in bound.costs[0][0]


def test_a_slow_primary_still_answers_without_a_badge_and_its_delay_counts() -> None:
    expectation = run("primary-slow")
    shown = expectation.expected()
    assert (shown.tier, shown.badge, shown.reason) == ("sonnet", None, None)
    assert expectation.bound is not None
    delay = TIERS[0].timeouts.first_token_s / 2
    assert expectation.bound.ttft_s == delay + (TIERS[0].sla or DEFAULT_SLA).ttft_p95_s


def test_a_cut_restarts_on_haiku_and_says_the_reply_broke_off() -> None:
    shown = run("primary-cut").expected()
    broke = failed("sonnet", ErrorKind.CONNECTION, after_text=True)
    assert shown.tier == "haiku"
    assert shown.reason == degraded_reason(INFOS["haiku"], [broke])
    assert shown.reason is not None and "broke off" in shown.reason


def test_anthropic_down_crosses_to_the_other_provider() -> None:
    shown = run("anthropic-down").expected()
    assert shown.tier == "openai"
    assert shown.reason == degraded_reason(
        INFOS["openai"],
        [failed("sonnet", ErrorKind.OVERLOADED), failed("haiku", ErrorKind.OVERLOADED)],
    )


def test_all_down_queues_when_the_chain_file_has_a_deferral_table() -> None:
    expectation = run("all-down", deferral=deferral_of())
    assert expectation.queues and expectation.bound is None
    queued = expectation.expected_queued()
    assert queued is not None
    assert (queued.state, queued.badge, queued.title) == (
        ReplyState.QUEUED,
        "queued",
        queued_for("Sonnet (Message Batches)"),
    )
    assert queued.reason == queued_reason(["Sonnet", "Haiku", "GPT-5.5", "Gemini"])
    landed = expectation.expected(at=NOON)
    assert (landed.tier, landed.badge) == (DEFERRAL_TIER, "delayed reply")
    assert landed.title == generated_via("Sonnet (Message Batches)")
    accepted = expectation.accepted([NOON], max_wait_s=120.0)
    waits = {a.reason.rsplit(" via Sonnet (Message Batches) ", 1)[1] for a in accepted if a.reason}
    assert {"0 s later.", "45 s later.", "2 min later."} <= waits


def test_all_down_without_a_queue_fails_with_the_clear_error_and_no_badge() -> None:
    shown = run("all-down").expected()
    records = [failed(t.name, ErrorKind.OVERLOADED) for t in TIERS]
    assert (shown.tier, shown.state, shown.badge) == ("", ReplyState.FAILED, None)
    assert shown.error == exhausted_message(
        records, deadline_s=120.0, out_of_time=False, rejected_keys=set()
    )


def test_a_revoked_key_is_never_queued() -> None:
    # The Message Batches backend uses the rejected key too: the policy refuses to queue.
    only_anthropic = TIERS[:2]
    expectation = run("primary-key-revoked", only_anthropic, deferral=deferral_of(only_anthropic))
    shown = expectation.expected()
    assert not expectation.queues and shown.state is ReplyState.FAILED
    assert shown.error is not None and "ANTHROPIC_API_KEY" in shown.error


def test_instance_wide_also_accepts_a_tier_skipped_by_its_open_breaker() -> None:
    accepted = run("primary-down", instance_wide=True).accepted([NOON], 0.0)
    reasons = {a.reason for a in accepted}
    since = f"Sonnet has been unavailable since {clock_time(NOON)} (overloaded)"
    assert f"Reply generated by Haiku because {since}." in reasons
    assert all(a.tier == "haiku" for a in accepted)
    only_own = run("primary-down").accepted([NOON], 0.0)
    assert len(only_own) == 1  # a drill of its own turns never opens a breaker


def test_a_skipped_primary_with_a_revoked_key_leaves_haiku_to_fail_on_the_same_key() -> None:
    accepted = run("primary-key-revoked", instance_wide=True).accepted([NOON], 0.0)
    assert {a.tier for a in accepted} == {"openai"}
    assert any("unavailable since" in (a.reason or "") for a in accepted)


def test_a_hedged_primary_may_lose_its_hedge_instead_of_timing_out() -> None:
    hedged = (replace(TIERS[0], hedge_after_s=2.0), *TIERS[1:])
    accepted = run("primary-hang", hedged).accepted([NOON], 0.0)
    lost = replace(failed("sonnet", ErrorKind.TIMEOUT), outcome=AttemptOutcome.CANCELLED)
    lost = replace(lost, error_kind=None, hedge=HedgeRole.HEDGED)
    assert degraded_reason(INFOS["haiku"], [lost]) in {a.reason for a in accepted}


def test_the_sla_comes_from_the_chain_file_else_the_defaults_and_flags_override(
    tmp_path: Path,
) -> None:
    own = replace(TIERS[1], sla=SLA(ttft_p95_s=1.5, total_p95_s=12.0))
    assert sla_of(own, None, None).sla == SLA(1.5, 12.0)
    assert sla_of(own, None, None).source == "chain file"
    unset = replace(TIERS[1], sla=None)
    assert sla_of(unset, None, None).sla == DEFAULT_SLA
    assert "no sla in the chain file" in sla_of(unset, None, None).source
    flagged = sla_of(own, 9.0, None)
    assert (flagged.sla, flagged.source) == (SLA(9.0, 12.0), "flags")


def test_the_hypothesis_states_who_answers_its_numbers_and_its_words() -> None:
    expectation = run("primary-hang")
    text = hypothesis(BY_NAME["primary-hang"], TIERS, expectation, queue_timeout_s=300)
    bound = expectation.bound
    assert bound is not None
    assert text.startswith("With Sonnet hanging (no first token, ever), Haiku answers")
    assert f"p95 first token under {bound.ttft_s:g} s" in text
    assert "Sonnet's 8 s first-token timeout" in text
    assert "`fast mode (smaller model)`" in text and str(expectation.expected().reason) in text
