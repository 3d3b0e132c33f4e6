"""web.redact: configured secrets are scrubbed by value, whatever their shape."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from web.app import create_app
from web.logsafe import FORMAT, SafeFormatter
from web.providers.base import ErrorKind, ProviderError
from web.redact import forget_secrets, redact, register_secrets
from web.settings import Settings
from web.state import AppState

SHAPELESS_KEY = "Zq7vN2mXp9LkT4wRb8Yc"
"""A key in no format redact() knows by shape."""
ANTHROPIC_KEY = "sk-ant-api03-Hq2Wd9Lm4Nx7Pz1Kv6Rs"
PASSWORD = "Hunter2-admin-passphrase"


@pytest.fixture(autouse=True)
def clean_registry() -> Iterator[None]:
    forget_secrets()
    yield
    forget_secrets()


def test_a_key_without_a_known_shape_is_scrubbed_once_registered() -> None:
    text = f"upstream: key {SHAPELESS_KEY} rejected; hint ...{SHAPELESS_KEY}."
    assert redact(text) == text  # shapes alone miss it: this is why keys are registered
    register_secrets(SHAPELESS_KEY)
    assert redact(text) == "upstream: key [redacted] rejected; hint ...[redacted]."


def test_a_key_body_without_its_prefix_is_scrubbed() -> None:
    register_secrets(ANTHROPIC_KEY)
    body = ANTHROPIC_KEY.removeprefix("sk-ant-")
    assert body not in redact(f"token {body} is invalid")
    assert ANTHROPIC_KEY not in redact(f"key {ANTHROPIC_KEY} is invalid")


def test_short_values_are_not_registered_and_other_text_is_left_alone() -> None:
    register_secrets("abc", "", None, PASSWORD)
    assert redact("abc and friends") == "abc and friends"
    assert redact(f"login with {PASSWORD}") == "login with [redacted]"


def test_the_app_registers_its_keys_and_admin_password_at_start(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "UNDERSTUDY_DATA_DIR": str(tmp_path),
            "ANTHROPIC_API_KEY": SHAPELESS_KEY,
            "OPENAI_API_KEY": "another-shapeless-openai-key",
            "UNDERSTUDY_ADMIN_PASSWORD": PASSWORD,
        }
    )
    create_app(settings)
    text = f"{SHAPELESS_KEY} / another-shapeless-openai-key / {PASSWORD}"
    assert redact(text) == "[redacted] / [redacted] / [redacted]"


async def test_a_generated_admin_password_is_registered_too(tmp_path: Path) -> None:
    app = create_app(Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path)}))
    async with app.router.lifespan_context(app):
        admin = AppState.of(app).admin
        assert admin.generated
        assert redact(f"password {admin.password}") == "password [redacted]"


def test_log_lines_are_scrubbed_of_registered_secrets() -> None:
    register_secrets(SHAPELESS_KEY)
    record = logging.LogRecord(
        "web.chain", logging.WARNING, __file__, 1, "tier failed: %s", (SHAPELESS_KEY,), None
    )
    assert SafeFormatter(FORMAT).format(record).endswith("tier failed: [redacted]")


def test_a_provider_error_quoting_a_registered_key_keeps_no_trace_of_it() -> None:
    # What the chain records and the turn log stores (web.db.turnlog redacts again on write).
    register_secrets(SHAPELESS_KEY)
    error = ProviderError(ErrorKind.AUTH, f"Invalid key {SHAPELESS_KEY}", status=401)
    assert error.message == "Invalid key [redacted]"
    assert SHAPELESS_KEY not in repr(error)
