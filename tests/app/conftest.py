"""Fixtures: one or two independent browser sessions talking HTTP to the live server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .chatclient import ChatClient

if TYPE_CHECKING:
    from tests.conftest import LiveApp


@pytest.fixture
def client(live_app: LiveApp) -> Iterator[ChatClient]:
    chat = ChatClient(live_app.url)
    yield chat
    chat.close()


@pytest.fixture
def stranger(live_app: LiveApp) -> Iterator[ChatClient]:
    """Another browser session."""
    chat = ChatClient(live_app.url)
    yield chat
    chat.close()
