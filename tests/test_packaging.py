"""What pyproject.toml says the package ships is there to ship."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_data_pattern_matches_a_file():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    package_data = project["tool"]["setuptools"]["package-data"]

    missing = [
        f"{package}/{pattern}"
        for package, patterns in package_data.items()
        for pattern in patterns
        if not any((ROOT / package).glob(pattern))
    ]

    assert missing == []


def test_the_package_says_it_is_typed():
    # PEP 561: type checkers read a package's annotations only when it ships py.typed.
    assert (ROOT / "app" / "py.typed").is_file()
