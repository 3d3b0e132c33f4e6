"""web.app's error pages: each title names its error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import HTTPException

from web.app import create_app, http_error_title
from web.errors import AppError, BadRequest, Conflict, Invalid, NotFound, TooLarge
from web.settings import Settings

EXPECTED = {
    AppError: (400, "Bad request"),
    BadRequest: (400, "Bad request"),
    NotFound: (404, "Not found"),
    Conflict: (409, "Busy"),
    TooLarge: (413, "Too large"),
    Invalid: (422, "Invalid request"),
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The app without its lifespan (error pages must work before it ran), plus failing routes."""
    app = create_app(Settings.from_env({"UNDERSTUDY_DATA_DIR": str(tmp_path)}))

    async def raise_app_error(name: str) -> None:
        error = {cls.__name__: cls for cls in EXPECTED}[name]
        raise error("what went wrong, and what to do")

    async def raise_http_error(status: int) -> None:
        raise HTTPException(status_code=status, detail="what went wrong")

    app.add_api_route("/app-error/{name}", raise_app_error)
    app.add_api_route("/http-error/{status}", raise_http_error)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize("error", list(EXPECTED), ids=lambda cls: cls.__name__)
async def test_an_app_error_page_is_titled_by_its_kind(
    client: httpx.AsyncClient, error: type[AppError]
) -> None:
    status, title = EXPECTED[error]
    reply = await client.get(f"/app-error/{error.__name__}", headers={"accept": "text/html"})
    assert reply.status_code == status
    assert f"<h1>{title}</h1>" in reply.text
    assert "what went wrong, and what to do" in reply.text


@pytest.mark.parametrize(
    ("status", "title"),
    [(400, "Bad request"), (409, "Busy"), (413, "Too large"), (429, "Too many requests"),
     (418, "I'm a Teapot"), (500, "Internal Server Error")],
)  # fmt: skip
async def test_an_http_error_page_is_titled_by_its_status(
    client: httpx.AsyncClient, status: int, title: str
) -> None:
    reply = await client.get(f"/http-error/{status}", headers={"accept": "text/plain"})
    assert reply.status_code == status
    assert reply.text == f"{title}: what went wrong\n"
    assert http_error_title(status) == title
