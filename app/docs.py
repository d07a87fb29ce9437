"""`GET /` (an index of the public pages) and `GET /docs` (Swagger UI over /openapi.json).

Swagger UI's files come from the `flask-swagger-ui` package and are served by
this app under /docs/assets/, so the page works offline and behind a firewall:
the HTML names no other host, and its Content-Security-Policy lets the browser
load nothing from anywhere else either.
"""

from __future__ import annotations

import json
import secrets
from importlib.resources import files

from flask import Blueprint, Response, jsonify, url_for
from werkzeug.middleware.shared_data import SharedDataMiddleware

bp = Blueprint("docs", __name__)

ASSETS_URL = "/docs/assets"
ASSETS_DIR = str(files("flask_swagger_ui") / "dist")

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>sms-service API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
  <link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script nonce="{nonce}">
    window.ui = SwaggerUIBundle({config});
  </script>
</body>
</html>
"""


def serve_assets(wsgi_app):
    """Swagger UI's static files, outside the URL map (they are not API routes)."""
    return SharedDataMiddleware(wsgi_app, {ASSETS_URL: ASSETS_DIR}, cache_timeout=3600)


@bp.get("/")
def index():
    return jsonify(
        service="sms-service",
        links={
            "docs": url_for("docs.docs"),
            "openapi": url_for("openapi.openapi_json"),
            "health": url_for("api.health"),
        },
    )


@bp.get("/docs")
def docs():
    nonce = secrets.token_urlsafe(16)
    config = {
        "url": url_for("openapi.openapi_json"),
        "dom_id": "#swagger-ui",
        "deepLinking": True,
        "tryItOutEnabled": True,
        # Swagger UI would otherwise send the document to validator.swagger.io.
        "validatorUrl": None,
    }
    page = _PAGE.format(assets=ASSETS_URL, nonce=nonce, config=json.dumps(config))
    response = Response(page, mimetype="text/html")
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
