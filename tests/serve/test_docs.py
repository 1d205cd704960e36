"""``/docs`` works offline: the page and every script and stylesheet it references come from this service."""

from __future__ import annotations

import re

import pytest

from tests.serve.conftest import serving, settings_for

pytestmark = pytest.mark.anyio


def referenced_assets(html: str) -> list[str]:
    """Every ``<script src>`` and ``<link href>`` of a page."""
    return re.findall(r'<script[^>]*\ssrc="([^"]+)"', html) + re.findall(r'<link[^>]*\shref="([^"]+)"', html)


async def test_docs_page_and_all_its_assets_are_served_locally(tiny_bundle):
    async with serving(settings_for(tiny_bundle)) as (_, client):
        page = await client.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'self'" in csp
        assert "<script>" not in page.text  # no inline script: the CSP would block it
        assets = referenced_assets(page.text)
        assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/static/docs.js"} <= set(assets)
        for url in assets:
            if url.startswith("data:"):
                continue
            assert url.startswith("/"), f"{url} is not served by this service"
            r = await client.get(url)
            assert r.status_code == 200 and len(r.content) > 0, url
            assert r.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript",
                                                               "text/css"), (url, r.headers["content-type"])
        assert "/openapi.json" in (await client.get("/static/docs.js")).text
        assert (await client.get("/openapi.json")).json()["paths"]
    async with serving(settings_for(tiny_bundle, docs=False)) as (_, client):
        assert (await client.get("/docs")).status_code == 404
        assert (await client.get("/openapi.json")).status_code == 404
