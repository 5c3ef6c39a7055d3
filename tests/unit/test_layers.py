"""The folders are the layers: a module imports only from its own layer and those below it
(server/__init__.py), and nothing imports `__main__`. Read from the source, not guessed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parents[2] / "server"
BASE_MODULES = {"config", "errors", "telemetry", "metrics", "registry"}
# Each layer's rank: a module may import a module of the same or a lower rank.
RANKS = {"base": 0, "store": 1, "relay": 2, "users": 3, "web": 4, "top": 5}
TOP_MODULES = {"app", "runner", "__main__", "gunicorn_conf"}


def layer_of(dotted: str) -> str:
    """`server.relay.runs` -> relay; `server.config` -> base; `server.app` -> top."""
    parts = dotted.split(".")
    assert parts[0] == "server", dotted
    if len(parts) == 1:
        return "base"
    head = parts[1]
    if head in RANKS:
        return head
    if head in BASE_MODULES:
        return "base"
    if head in TOP_MODULES:
        return "top"
    raise AssertionError(f"{dotted} is in no layer: add it to server/__init__.py's list")


def module_name(path: Path, root: Path = SERVER.parent) -> str:
    relative = path.relative_to(root).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def internal_imports(path: Path, root: Path = SERVER.parent) -> list[str]:
    """Every `server.*` module a file imports, relative imports resolved, at any depth
    (imports inside functions count: they are dependencies all the same)."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "server"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.split(".")[0] == "server":
                found.append(target)
    return found


SOURCES = sorted(SERVER.rglob("*.py"))


def test_every_module_is_in_a_layer() -> None:
    assert len(SOURCES) > 20
    for path in SOURCES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(SERVER)))
def test_no_module_imports_a_higher_layer(path: Path) -> None:
    importer = module_name(path)
    rank = RANKS[layer_of(importer)]
    for imported in internal_imports(path):
        assert imported != "server.__main__", f"{importer} imports __main__"
        assert RANKS[layer_of(imported)] <= rank, (
            f"{importer} ({layer_of(importer)}) imports {imported} ({layer_of(imported)})"
        )


def test_the_checker_catches_a_reach_up(tmp_path: Path) -> None:
    """The rule is not vacuous: a store module importing a transport is caught."""
    bad = tmp_path / "server" / "store" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from server.web.limits import admit_chat\nfrom ..relay import runs\n")
    imports = internal_imports(bad, tmp_path)
    assert imports == ["server.web.limits", "server.relay"]
    assert [RANKS[layer_of(i)] > RANKS["store"] for i in imports] == [True, True]
