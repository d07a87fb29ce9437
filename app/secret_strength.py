"""Secrets production refuses: too short to resist guessing, or published.

The README and `.env.example` are not installed with the package, so the
example values they show are listed here; tests/test_secret_strength.py fails
when either file shows a value this list lacks.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

MIN_SECRET_LENGTH = 16

# Every credential-like value shown in README.md or .env.example (and the
# obvious placeholders people paste): a deployment using one is using a secret
# anybody can read.
PUBLISHED_EXAMPLE_VALUES = frozenset(
    {
        "demo-key-change-me",
        "local-api-key-0123456789abcdef",
        "local-signature-secret-0123456789abcdef",
        "old",
        "new",
        "changeme",
        "change-me",
        "secret",
        "your-api-key",
        "your-signature-secret",
    }
)


def _refusals(name: str, values: Iterable[str], *, min_length: int | None) -> list[str]:
    problems = []
    for value in values:
        if value in PUBLISHED_EXAMPLE_VALUES:
            problems.append(f"{name} uses a published example value; choose your own")
        elif min_length is not None and len(value) < min_length:
            problems.append(f"{name} must be at least {min_length} characters long")
    return problems


def weak_secret_problems(
    *,
    api_keys: Iterable[str],
    signature_secrets: dict[str, str],
    other_secrets: dict[str, str],
    private_key_path: str | None,
) -> list[str]:
    """One message per weak setting, naming it and never showing its value.

    `signature_secrets` and `api_keys` are ours to choose, so they must be long;
    `other_secrets` (Vonage's account credentials, whose length Vonage decides)
    must only not be published examples.
    """
    problems = _refusals("API_KEYS", api_keys, min_length=MIN_SECRET_LENGTH)
    for name, value in signature_secrets.items():
        if value:
            problems += _refusals(name, [value], min_length=MIN_SECRET_LENGTH)
    for name, value in other_secrets.items():
        if value:
            problems += _refusals(name, [value], min_length=None)
    if private_key_path:
        problems += _key_file_problems(private_key_path)
    return list(dict.fromkeys(problems))


def _key_file_problems(path: str) -> list[str]:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return []  # reported when the key is read
    if mode & (stat.S_IRWXO | stat.S_IWGRP):
        return [
            "VONAGE_PRIVATE_KEY_PATH is readable or writable by other users; "
            f"run chmod 600 on it (mode now {stat.S_IMODE(mode):o})"
        ]
    return []
