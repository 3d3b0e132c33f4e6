"""docs/alerts.yml: a Prometheus rule file that parses, whose every metric, label and label value
is one that /metrics exports (a rule naming a series that never exists never fires). The app is
the real one, lifespan and all, on the default chain (demo mode: the simulator, in process)."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from web.app import create_app
from web.settings import DEFAULT_CHAIN_FILE, Settings, load_chain
from web.status import TurnStatus

RULES = Path(__file__).resolve().parents[1] / "docs" / "alerts.yml"
RULE_TESTS = RULES.with_name("alerts.test.yml")
PROMTOOL = shutil.which("promtool")
SELECTOR = re.compile(r"\b(understudy_[a-z_]+)\s*(?:\{([^}]*)\})?")
MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
WANTED = {
    "UnderstudyDegradedShareHigh",
    "UnderstudyPrimaryBreakerOpen",
    "UnderstudyQueueGrowing",
    "UnderstudyDrillOverdue",
}


def rules() -> list[dict[str, object]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a freshly started app, as a loopback scraper reads it."""
    data = tmp_path_factory.mktemp("alerts")
    settings = Settings.from_env(
        {"UNDERSTUDY_DATA_DIR": str(data), "UNDERSTUDY_ADMIN_PASSWORD": "alerts-test-password"}
    )
    app = create_app(settings)
    with TestClient(app, base_url="http://127.0.0.1:8000", client=("127.0.0.1", 50000)) as http:
        reply = http.get("/metrics")
    assert reply.status_code == 200, reply.text
    yield reply.text


def exported(text: str) -> dict[str, set[str]]:
    """Sample name -> its label names."""
    names: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(set(sample.labels) - {"le"})
    return names


def test_the_file_parses_as_a_rule_file_with_the_four_alerts() -> None:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert [group["name"] for group in document["groups"]] == ["understudy"]
    found = rules()
    assert {rule["alert"] for rule in found} == WANTED
    for rule in found:
        assert set(rule) == {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        assert re.fullmatch(r"\d+[smh]", str(rule["for"]))
        assert rule["labels"]["severity"]  # type: ignore[index]
        assert rule["annotations"]["summary"]  # type: ignore[index]


def test_every_series_a_rule_names_is_on_metrics(metrics_text: str) -> None:
    names = exported(metrics_text)
    statuses = {s.value for s in TurnStatus}
    tiers = {t.name for t in load_chain(DEFAULT_CHAIN_FILE)}
    allowed = {"status": statuses, "drill": {"true", "false"}, "tier": tiers}
    used = 0
    for rule in rules():
        for name, matchers in SELECTOR.findall(str(rule["expr"])):
            used += 1
            assert name in names, f"{rule['alert']}: {name} is not on /metrics"
            for label, op, wanted in MATCHER.findall(matchers):
                assert label in names[name], f"{rule['alert']}: {name} has no label {label}"
                values = wanted.split("|") if op in ("=~", "!~") else [wanted]
                assert set(values) <= allowed[label], f"{rule['alert']}: {label}={wanted}"
    assert used >= len(WANTED)


@pytest.mark.parametrize("suffix", HISTOGRAM_SUFFIXES)
def test_the_histograms_series_are_on_metrics_for_rules_to_come(
    metrics_text: str, suffix: str
) -> None:
    names = exported(metrics_text)
    assert f"understudy_turn_duration_seconds{suffix}" in names
    assert f"understudy_time_to_first_token_seconds{suffix}" in names


@pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (Debian: prometheus)")
def test_the_rules_fire_when_they_should_by_promtools_unit_tests() -> None:
    """docs/alerts.test.yml: each alert fires on series that should fire it, and not before its
    `for`, nor on a drill's turns, nor after the condition clears."""
    assert PROMTOOL is not None
    run = subprocess.run(
        [PROMTOOL, "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
