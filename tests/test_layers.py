"""dydet's imports run one way: cfg / utils / data / routing, then nn, then engine, then models, then cli.

Every module of `dydet/` is read with `ast` (imports inside functions included) and each import of a dydet module is
checked against the layer order; the bottom modules must not import each other in a circle; no module is longer
than 600 lines.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dydet"
# Layer of each top-level part of dydet: a module may import its own layer and the layers below it only.
LAYERS = {
    "cfg": 0,
    "utils": 0,
    "data": 0,
    "routing": 0,
    "nn": 1,
    "engine": 2,
    "models": 3,
    "cli": 4,
    "__main__": 4,
    "__init__": 4,  # the package top, `dydet/__init__.py`: its lazy model classes
}
BOTTOM = [name for name, layer in LAYERS.items() if layer == 0]
MAX_LINES = 600


def module_name(path: Path) -> str:
    """Return the dotted name of a module file of dydet."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str | None:
    """Return the top-level part of dydet a dotted module name belongs to (None: dydet itself).

    `dydet:NAME` is a name imported from the package top: `__version__` belongs to no layer (the top's `__init__`
    imports nothing), anything else (`DynamicYOLO`, ...) to the top.
    """
    if module.startswith("dydet:"):
        return None if module == "dydet:__version__" else "__init__"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def dydet_imports(path: Path) -> list[tuple[int, str]]:
    """Return (line, module) for every import of a dydet module in a file, at any depth (functions included)."""
    found = []
    here = module_name(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):  # a bare `import dydet` reads `dydet.__version__`: the top imports nothing
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("dydet.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "dydet":  # `from dydet import cfg` imports the part; `from dydet import DynamicYOLO` the top
                found += [
                    (node.lineno, f"dydet.{a.name}" if a.name in LAYERS else f"dydet:{a.name}") for a in node.names
                ]
            elif target.split(".")[0] == "dydet":
                found += [(node.lineno, target)]
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_the_walk_finds_every_module_and_its_imports():
    assert len(MODULES) > 50
    assert any(target.startswith("dydet.routing") for p in MODULES for _, target in dydet_imports(p))


def test_imports_follow_the_layer_order():
    wrong = []
    for path in MODULES:
        source = part_of(module_name(path))
        if source is None:
            continue  # dydet/__init__.py: the top, may import anything
        for line, target in dydet_imports(path):
            part = part_of(target)
            if part is None:
                continue
            if part not in LAYERS or source not in LAYERS:
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line}: '{part}' or '{source}' has no layer")
            elif LAYERS[part] > LAYERS[source] or (source == "cfg" and part == "data"):
                wrong.append(f"{path.relative_to(PACKAGE.parent)}:{line} ({source}) imports {target} ({part})")
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def module_of(target: str, names: set[str]) -> str:
    """Return the module an imported dotted name is in: itself, or its parent when it names an attribute."""
    while target not in names and "." in target:
        target = target.rpartition(".")[0]
    return target


def test_the_bottom_modules_import_each_other_without_a_circle():
    bottom = {module_name(p): p for p in MODULES if part_of(module_name(p)) in BOTTOM}
    edges = {
        name: {module_of(t, set(bottom)) for _, t in dydet_imports(path) if part_of(t) in BOTTOM} - {name}
        for name, path in bottom.items()
    }

    def circle_through(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges.get(node, ()):
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    circles = [c for name in sorted(bottom) if (c := circle_through(name))]
    assert not circles, "bottom modules import each other in a circle: " + " -> ".join(circles[0])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_no_module_is_longer_than_600_lines(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(PACKAGE.parent)} has {n} lines: split it along its jobs"
