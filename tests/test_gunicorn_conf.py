"""The Procfile's gunicorn settings: hooks that run in every worker."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_a_worker_moves_what_its_loaded_app_keeps_alive_out_of_the_collectors_sight(tmp_path):
    """After the app is loaded, its long-lived objects are frozen, so the oldest
    generation's collections (every thread stopped) no longer walk them."""
    code = (
        "import gc\n"
        "from app import gunicorn_conf\n"
        "before = gc.get_freeze_count()\n"
        "gunicorn_conf.post_worker_init(None)\n"
        "print(before, gc.get_freeze_count())\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "PORT": "3000",
    }
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    before, after = map(int, result.stdout.split())
    assert before == 0
    assert after > 10_000
