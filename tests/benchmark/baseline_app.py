"""The baseline: a Flask app that answers 200 to everything and does nothing else.

Served with the Procfile's gunicorn settings, it is what "as fast as Flask under
gunicorn on this machine" means; every result is a ratio against it.
"""

from flask import Flask


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/", defaults={"path": ""}, methods=["GET", "POST"])
    @app.route("/<path:path>", methods=["GET", "POST"])
    def ok(path: str):
        return ""

    return app
