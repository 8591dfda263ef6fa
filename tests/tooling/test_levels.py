"""The packages of kbb on levels (src/kbb/__init__.py): every import of a
kbb module goes to a lower level, none runs back up or sideways."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "kbb"
LEVELS = {
    "kbb.cli": 9,
    "kbb.study": 8,
    "kbb.bench": 7,
    "kbb.mutants": 7,
    "kbb.status": 7,
    "kbb.pr": 6,
    "kbb.build": 6,
    "kbb.upstream": 5,
    "kbb.workspace": 4,
    "kbb.report": 4,
    "kbb.pins": 3,
    "kbb.results": 3,
    "kbb.series": 3,
    "kbb.layout": 3,
    "kbb.git": 2,
    "kbb.markdown": 1,
    "kbb.files": 1,
    "kbb.lock": 1,
    "kbb.wheelfile": 1,
    "kbb": 0,
}


def level(module):
    """(the package or module of `module` in LEVELS, its level)."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in LEVELS:
            return name, LEVELS[name]
    raise AssertionError(f"{module} has no level in src/kbb/__init__.py")


def test_every_import_goes_down():
    upward = []
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(["kbb", *parts]).removesuffix(".__init__")
        if module == "kbb.__main__":
            continue  # `python -m kbb`: the entry point of the command
        own, mine = level(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module.split(".")[0] != "kbb":
                continue
            for alias in node.names:
                target, theirs = level(f"{node.module}.{alias.name}")
                if target != own and theirs >= mine:
                    upward.append(f"{module} imports {node.module}.{alias.name}")
    assert upward == []


def test_no_module_over_300_lines():
    long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > 300
    }
    assert long == {}
