"""The AppState: attached once by the lifespan; before that, error pages still render."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from web.app import create_app
from web.settings import Settings
from web.state import AppState


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path / "data")})


async def test_before_the_lifespan_there_is_no_state_but_error_pages_work(
    settings: Settings,
) -> None:
    app = create_app(settings)
    assert AppState.find(app) is None
    with pytest.raises(RuntimeError, match="has not started"):
        AppState.of(app)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        page = await http.get("/nowhere", headers={"accept": "text/html"})
    assert page.status_code == 404 and "There is no page at this address." in page.text
    assert "demo: simulated models" not in page.text


async def test_the_lifespan_attaches_the_state_with_the_simulator_it_started(
    settings: Settings,
) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        state = AppState.of(app)
        assert state.demo_mode and state.sim_client is not None
        assert state.settings.sim_url is not None
        assert state.settings.sim_url.startswith("http://127.0.0.1:")
        assert state.admin.generated  # no UNDERSTUDY_ADMIN_PASSWORD in these settings
        assert AppState.of(app) is state
