"""GET / and GET /docs: public, and the docs page needs no other host."""

from __future__ import annotations

import re

from tests.support import count_rows

EXTERNAL_URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)


def test_index_links_the_docs_the_document_and_the_health_check(client):
    response = client.get("/")

    assert response.status_code == 200
    links = response.get_json()["links"]
    assert links == {"docs": "/docs", "openapi": "/openapi.json", "health": "/health"}
    for path in links.values():
        assert client.get(path).status_code == 200, path


def test_docs_page_needs_no_key_and_names_no_other_host(client):
    response = client.get("/docs")

    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert EXTERNAL_URL.findall(page) == []
    assert "/openapi.json" in page
    policy = response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy
    assert "http" not in policy


def test_every_file_the_docs_page_loads_is_served_by_the_app(client):
    page = client.get("/docs").get_data(as_text=True)
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)

    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for path in assets:
        with client.get(path) as response:
            assert response.status_code == 200, path
            assert len(response.data) > 0


def test_the_swagger_ui_script_reaches_for_no_cdn(client):
    with client.get("/docs/assets/swagger-ui-bundle.js") as response:
        script = response.get_data(as_text=True)

    assert "unpkg.com" not in script and "cdn.jsdelivr" not in script


def test_asset_paths_cannot_leave_the_assets_folder(client):
    for path in ("/docs/assets/../__init__.py", "/docs/assets/%2e%2e/flask_swagger_ui.py"):
        assert client.get(path).status_code == 404


def test_docs_and_index_touch_no_database(app, client, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the database was opened")

    monkeypatch.setattr(app.extensions["db"], "connect", refuse)

    assert client.get("/").status_code == 200
    assert client.get("/docs").status_code == 200
    monkeypatch.undo()
    assert count_rows(app, "messages") == 0
