"""The suite ignores the caller's settings: a developer's `.env` and exported variables."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dotenv.main

from app.config import load_settings

REPO_ROOT = Path(__file__).resolve().parent.parent
HOSTILE = {
    "APP_ENV": "production",
    "API_KEYS": "hostile-key",
    "DATABASE_URL": "postgresql+psycopg://nobody@127.0.0.1:1/none",
    "VONAGE_APPLICATION_ID": "hostile-app",
    "VONAGE_NUMBER": "+14155550000",
    "VONAGE_SIGNATURE_SECRET": "hostile-secret",
    "VONAGE_API_HOST": "127.0.0.1:8443",
}


def test_a_dotenv_wherever_python_dotenv_looks_changes_nothing(tmp_path, monkeypatch):
    hostile = tmp_path / ".env"
    hostile.write_text("".join(f"{name}={value}\n" for name, value in HOSTILE.items()))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(dotenv.main, "find_dotenv", lambda *args, **kwargs: str(hostile))

    settings = load_settings()

    assert settings.app_env == "development"
    assert settings.api_keys == ()
    assert settings.vonage_api_host == "api.nexmo.com"
    assert not set(HOSTILE) & set(os.environ)


def test_exported_settings_do_not_reach_the_tests(tmp_path, private_key_pem):
    """A child pytest, started with a complete production configuration exported, passes."""
    key = tmp_path / "private.key"
    key.write_text(private_key_pem)
    env = {**os.environ, **HOSTILE, "VONAGE_PRIVATE_KEY_PATH": str(key)}
    # These three tests use no plugin; not loading hypothesis' and schemathesis' saves
    # the child most of its start-up.
    env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    tests = [
        "tests/test_config.py::test_production_refuses_to_start_the_app",
        "tests/test_config.py::test_defaults_for_a_local_run",
        "tests/test_isolation.py::test_a_dotenv_wherever_python_dotenv_looks_changes_nothing",
    ]
    child = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert child.returncode == 0, child.stdout + child.stderr
    assert "3 passed" in child.stdout
