"""The import structure: the core at the bottom, owning its ports; nothing in it points outwards.

Every ``import`` counts, including those under ``TYPE_CHECKING`` and inside functions: an arrow the wrong way
is a dependency whether or not it runs at import time. Read from the installed sources with ``ast``, so the
check sees what ships.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True, slots=True)
class Layer:
    package: str
    # Vigil packages it may import (besides itself); any other ``vigil.*`` import is an arrow the wrong way.
    may_import: tuple[str, ...]
    # Third-party packages it must not import (the platforms, the backends, the model runtime).
    must_not_import: tuple[str, ...] = ()


_OUTSIDE_WORLD = (
    "aiohttp",
    "aiosqlite",
    "asyncpg",
    "cryptography",
    "discord",
    "onnxruntime",
    "prometheus_client",
    "slack_bolt",
    "slack_sdk",
    "tokenizers",
)
_ADAPTERS = ("vigil.bots.discord", "vigil.bots.slack", "vigil.bots.http", "vigil.bots.importers")

LAYERS = (
    Layer("vigil.bots.core", may_import=(), must_not_import=_OUTSIDE_WORLD),
    Layer("vigil.config", may_import=("vigil.bots.core",)),
    Layer("vigil.detector", may_import=("vigil.bots.core",)),
    Layer("vigil.storage", may_import=("vigil.bots.core", "vigil.config")),
    Layer("vigil.bots.discord", may_import=("vigil.bots.core", "vigil.config")),
    Layer("vigil.bots.slack", may_import=("vigil.bots.core", "vigil.config", "vigil.bots.http")),
    Layer("vigil.bots.http", may_import=("vigil.bots.core", "vigil.config")),
    Layer("vigil.bots.importers", may_import=("vigil.bots.core",)),
)


def imported_modules(source: str, *, module: str, is_package: bool) -> Iterator[str]:
    """Every module ``source`` imports, relative imports resolved against ``module``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                parts = module.split(".")
                anchor = parts if is_package else parts[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            yield base
            # ``from vigil.bots import discord`` imports the package vigil.bots.discord.
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def wrong_way_imports(layer: Layer, *, module: str, source: str, is_package: bool) -> list[str]:
    wrong: list[str] = []
    for imported in imported_modules(source, module=module, is_package=is_package):
        top = imported.split(".")[0]
        if top == "vigil":
            allowed = (layer.package, *layer.may_import)
            # A bare parent ("vigil", "vigil.bots") names no layer; its submodule imports are checked.
            if imported in ("vigil", "vigil.bots"):
                continue
            if not any(_within(imported, package) for package in allowed):
                wrong.append(imported)
        elif top in layer.must_not_import:
            wrong.append(imported)
    return wrong


def sources(package: str) -> Iterator[tuple[str, Path, bool]]:
    root = Path(importlib.import_module(package).__file__ or "").parent
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        is_package = parts[-1] == "__init__"
        yield ".".join(parts[:-1] if is_package else parts), path, is_package


@pytest.mark.parametrize("layer", LAYERS, ids=[layer.package for layer in LAYERS])
def test_no_import_points_the_wrong_way(layer: Layer) -> None:
    found = {
        module: wrong
        for module, path, is_package in sources(layer.package)
        if (wrong := wrong_way_imports(layer, module=module, source=path.read_text(), is_package=is_package))
    }
    assert found == {}, f"{layer.package} may import only {layer.may_import or 'itself'} of Vigil"


def test_the_core_has_sources_to_check() -> None:
    modules = {module for module, _, _ in sources("vigil.bots.core")}
    assert {"vigil.bots.core.ports", "vigil.bots.core.monitor"} <= modules


CORE = LAYERS[0]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (
            "from vigil.storage.sqlite import SqliteStore",
            ["vigil.storage.sqlite", "vigil.storage.sqlite.SqliteStore"],
        ),
        (
            "if TYPE_CHECKING:\n    from vigil.config.settings import Secret",
            ["vigil.config.settings", "vigil.config.settings.Secret"],
        ),
        ("def f():\n    import aiosqlite", ["aiosqlite"]),
        ("from ... import storage", ["vigil.storage"]),
        ("from vigil.bots import discord", ["vigil.bots.discord"]),
        ("from vigil.bots.core.models import Alert\nimport numpy", []),
    ],
)
def test_the_check_sees_every_kind_of_import(source: str, expected: list[str]) -> None:
    assert (
        wrong_way_imports(CORE, module="vigil.bots.core.monitor", source=source, is_package=False) == expected
    )


# Sinks render the ``Delivery`` the outbox built; a store role imported by one is a read behind its back.
SINK_MODULES = (
    "vigil.bots.core.sinks",
    "vigil.bots.discord.sink",
    "vigil.bots.slack.sink",
    "vigil.bots.http.webhook",
)


def store_roles() -> frozenset[str]:
    from vigil.bots.core import ports  # noqa: PLC0415

    return frozenset(
        name for name, value in vars(ports).items() if isinstance(value, type) and name.endswith("Store")
    )


@pytest.mark.parametrize("module", SINK_MODULES)
def test_sinks_read_no_storage(module: str) -> None:
    path = Path(importlib.import_module(module).__file__ or "")
    names = {
        imported.rsplit(".", 1)[-1]
        for imported in imported_modules(path.read_text(), module=module, is_package=False)
    }
    assert not names & store_roles(), f"{module} imports a store role"
    assert not any(name.startswith("vigil.storage") for name in names)
