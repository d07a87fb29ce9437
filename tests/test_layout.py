"""The shape of app/: short functions, and a domain that does not import Flask.

Read from the source with `ast`, so nothing is imported and function-local
imports count as much as module-level ones.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import app

APP = Path(app.__file__).parent
MAX_FUNCTION_LINES = 60
WEB_PACKAGES = {"flask", "flask_limiter", "flask_swagger_ui", "werkzeug"}

LONG_FUNCTION_EXCEPTIONS: set[tuple[str, str]] = set()

# The web layer: the factory, blueprints, error rendering, request logging,
# served documents, flask commands, gunicorn hooks and the simulator's own app.
# Only these may import Flask (or Werkzeug); every other module is domain code.
WEB_LAYER = (
    "__init__.py",
    "api/auth.py",
    "api/erasure.py",
    "api/routes.py",
    "api/schemas.py",
    "cli.py",
    "docs.py",
    "errors.py",
    "events/cli.py",
    "events/routes.py",
    "extensions.py",
    "gunicorn_conf.py",
    "observability.py",
    "openapi.py",
    "simulator/server.py",
    "webhooks/routes.py",
)
# Domain modules that still reach for Flask: `current_app` for a setting (events/outbox.py).
FLASK_IMPORT_EXCEPTIONS = {"events/outbox.py"}

# Domain modules that import nothing of Flask even through the app modules
# they import: pure rules, the store, the Vonage client, the event transport.
FLASK_FREE = (
    "channels.py",
    "config.py",
    "destinations.py",
    "failures.py",
    "events/backlog.py",
    "events/dispatcher.py",
    "events/receiver.py",
    "events/signing.py",
    "events/ssrf.py",
    "events/transport.py",
    "limit_storage.py",
    "metrics.py",
    "opt_outs.py",
    "readiness.py",
    "retention.py",
    "secret_strength.py",
    "sending/",
    "sms.py",
    "startup.py",
    "status.py",
    "store/",
    "throttle.py",
    "vonage_client.py",
    "webhooks/payloads.py",
    "webhooks/signature.py",
)


def _relative(path: Path) -> str:
    return path.relative_to(APP).as_posix()


def _modules() -> list[Path]:
    return sorted(APP.rglob("*.py"))


def _in(relative: str, entries) -> bool:
    return any(relative == e or (e.endswith("/") and relative.startswith(e)) for e in entries)


@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _module_name(path: Path) -> str:
    parts = path.relative_to(APP.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _paths_by_module() -> dict[str, Path]:
    return {_module_name(path): path for path in _modules()}


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth of its code, as absolute names.

    `from package import submodule` names the submodule, not the package.
    """
    known = _paths_by_module()
    names: set[str] = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = _absolute(path, node.level, node.module)
            submodules = {f"{base}.{alias.name}" for alias in node.names} & known.keys()
            names.update(submodules)
            if len(submodules) < len(node.names):
                names.add(base)
    return names


def _absolute(path: Path, level: int, module: str | None) -> str:
    """The absolute name of a relative import (`from . import x`, `from ..store import y`)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    anchor = package.split(".")[: len(package.split(".")) - level + 1]
    return ".".join([*anchor, *([module] if module else [])])


def _long_functions(path: Path) -> list[tuple[str, int, int]]:
    """(name, line, length) of every function or method over the limit, nested ones too."""
    return [
        (node.name, node.lineno, node.end_lineno - node.lineno + 1)
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]


def _web_imports(path: Path) -> set[str]:
    return {name for name in _imports(path) if name.split(".")[0] in WEB_PACKAGES}


def _reaches_web(path: Path) -> list[str]:
    """The chains of app imports by which `path` ends up importing Flask."""
    known = _paths_by_module()
    chains, seen, queue = [], {_module_name(path)}, [[_module_name(path)]]
    while queue:
        chain = queue.pop(0)
        here = known[chain[-1]]
        if _web_imports(here):
            web = ", ".join(sorted(_web_imports(here)))
            chains.append(f"{' -> '.join(chain)} (imports {web})")
            continue
        for name in sorted(_imports(here) & known.keys()):
            if name not in seen:
                seen.add(name)
                queue.append([*chain, name])
    return chains


def test_no_function_in_app_is_over_60_lines():
    too_long = [
        f"app/{_relative(path)}:{line} {name}: {lines} lines"
        for path in _modules()
        for name, line, lines in _long_functions(path)
        if (_relative(path), name) not in LONG_FUNCTION_EXCEPTIONS
    ]

    assert too_long == []


def test_only_the_web_layer_imports_flask():
    domain_importing_flask = [
        f"app/{_relative(path)} imports {', '.join(sorted(_web_imports(path)))}"
        for path in _modules()
        if not _in(_relative(path), WEB_LAYER)
        and _relative(path) not in FLASK_IMPORT_EXCEPTIONS
        and _web_imports(path)
    ]

    assert domain_importing_flask == []


def test_the_pure_domain_does_not_reach_flask_through_other_modules():
    listed = [path for path in _modules() if _in(_relative(path), FLASK_FREE)]
    chains = [chain for path in listed for chain in _reaches_web(path)]

    assert chains == []
    assert {_relative(path) for path in listed} >= {e for e in FLASK_FREE if not e.endswith("/")}


def test_the_checks_see_a_long_function_and_a_flask_import_inside_a_function(tmp_path):
    """The parsing the tests above rely on finds what they look for."""
    module = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES - 1))
    module.write_text(
        f"def fits():\n{body}\n\n\n"
        f"def too_long():\n{body}\n    x = 0\n\n\n"
        "def lazy():\n    from flask import current_app\n"
    )

    assert _long_functions(module) == [("too_long", 63, MAX_FUNCTION_LINES + 1)]
    assert _web_imports(module) == {"flask"}
