"""The package's layers, as a contract: each imports only what lies below it, with no cycles.

Read from the source with ``ast``, so a lazy import inside a function counts too: it is a
dependency all the same, only hidden.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import neptune_backup_async

PKG = Path(neptune_backup_async.__file__).parent
NAME = "neptune_backup_async"

# Top to bottom. A part may import its own part and any part on a lower line; parts on one
# line are siblings and may not import each other. A part is a subpackage, or a module of
# the package's root.
LAYERS: list[set[str]] = [
    {"__main__"},
    {"cli"},
    {"view", "to_mlflow", "to_wandb", "data"},
    {"loading"},  # what the loaders share
    {"__init__"},
    {"api"},
    {"processes"},
    {"engine"},
    {"settings"},
    {"remote", "format"},
    {"disk"},
    {"selection"},
    {"domain", "errors"},
]
STANDALONE = {"testing"}  # the fake server imports nothing of the backup, nor it the fake
ROOT_MODULES_AT_MOST = 12
LINES_AT_MOST = 450


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join([NAME, *parts]), path


def _imports(module: str, path: Path) -> set[str]:
    """Every module of the package that ``module`` imports, anywhere in it."""
    is_package = path.name == "__init__.py"
    here = module.split(".") if is_package else module.split(".")[:-1]
    known = {m for m, _ in _modules()}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(NAME))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith(NAME):
                target = node.module
            else:
                continue
            for a in node.names:  # `from . import layout` imports a module, not its package
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
    return {m for m in found if m in known and m != module}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _rank(part: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if part in layer)


def test_every_part_of_the_package_has_a_layer() -> None:
    parts = {_part(m) for m, _ in _modules()} - STANDALONE
    assert parts <= set().union(*LAYERS), parts - set().union(*LAYERS)


def test_each_part_imports_only_what_lies_below_it() -> None:
    wrong = []
    for module, path in _modules():
        part = _part(module)
        for target in _imports(module, path):
            other = _part(target)
            if other == part:
                continue
            if part in STANDALONE or other in STANDALONE:
                # The CLI's --demo and the fake's users start it; it imports nothing of ours.
                if part in STANDALONE or part not in {"cli"}:
                    wrong.append(f"{module} -> {target}")
                continue
            if _rank(other) <= _rank(part):
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def _outside_imports(path: Path) -> set[str]:
    """The top-level packages a module imports by absolute name, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_no_import_cycles() -> None:
    graph = {m: _imports(m, p) for m, p in _modules()}
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, route = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    cycles.append(" -> ".join([*route, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*route, nxt]))
    assert cycles == []


def test_only_the_neptune_adapter_imports_neptune() -> None:
    clients = {m for m, p in _modules() if _outside_imports(p) & {"neptune", "bravado", "bravado_core"}}
    assert clients == {f"{NAME}.remote.neptune.client"}


def test_only_the_neptune_adapter_reaches_into_private_attributes() -> None:
    """Another object's private attributes (a leading underscore, not a dunder) are the
    private API of its package: only the neptune adapter uses any, the client's. ``os._exit``
    and a namedtuple's own methods are public despite their names."""
    public = {"_exit", "_replace", "_asdict", "_fields", "_make"}
    reaching = set()
    for module, path in _modules():
        if _part(module) in STANDALONE:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and node.attr not in public
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
            ):
                reaching.add(module)
    assert reaching == {f"{NAME}.remote.neptune.client"}


def test_the_root_holds_only_the_entry_points_and_modules_stay_small() -> None:
    root = sorted(p.name for p in PKG.glob("*.py"))
    assert len(root) <= ROOT_MODULES_AT_MOST, root
    long = {
        str(p.relative_to(PKG)): n
        for _, p in _modules()
        if "testing" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > LINES_AT_MOST
    }
    assert long == {}


def test_only_each_loaders_adapter_imports_its_tracker() -> None:
    """The optional extras are imported in one module each, so the package imports without them."""
    importers = {t: {m for m, p in _modules() if t in _outside_imports(p)} for t in ("mlflow", "wandb")}
    assert importers == {"mlflow": {f"{NAME}.to_mlflow.tracking"}, "wandb": {f"{NAME}.to_wandb.client"}}
