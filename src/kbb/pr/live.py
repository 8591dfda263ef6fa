"""Whether the files a patch group changes are ones the package imports.

A patch can apply to a file that nothing imports any more: upstream moved
keras' backend operations from `keras/src/backend/NAME/MOD.py` to
`.../NAME/ops/MOD.py`, moved them back, and moved them again, and a move
can leave the old copies in the tree. A patch to such a dead copy applies
cleanly and changes nothing that runs. `dead` follows the imports of the
package's sources (statically, every branch and function body included)
from its `__init__.py` files and names the changed modules it never reaches.
"""

import ast
from pathlib import Path


def _imports(path, module):
    """The modules that `path` (module `module`) imports, and candidates:
    `from a import b` names `a` and `a.b`, whichever exists."""
    try:
        body = ast.parse(path.read_bytes())
    except (SyntaxError, ValueError):
        return []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(body):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]
    return found


def live_files(tree, packages):
    """The source files of `tree` (relative paths) that the top-level
    `packages` import, from their own, `src` and `api` __init__ files."""
    tree = Path(tree)
    todo = [f"{p}{s}" for p in packages for s in ("", ".src", ".api")]
    seen, files = set(), set()
    while todo:
        module = todo.pop()
        if module in seen or not module:
            continue
        seen.add(module)
        base = tree.joinpath(*module.split("."))
        found = [base.with_suffix(".py"), base / "__init__.py"]
        found = [path for path in found if path.is_file()]
        if not found:
            continue
        path = found[0]
        files.add(path.relative_to(tree).as_posix())
        parents = module.split(".")
        todo += [".".join(parents[:i]) for i in range(1, len(parents))]
        todo += [m for m in _imports(path, module) if m.split(".")[0] in packages]
    return files


def dead(tree, files):
    """The Python files among `files` that the package never imports (test
    files, which test runners collect, are not asked about).

    >>> dead("any-tree", ["keras/src/ops/nn_test.py", "README.md"])
    []
    """
    sources = [f for f in files if f.endswith(".py") and not f.endswith("_test.py")]
    packages = {f.split("/")[0] for f in sources}
    live = live_files(tree, packages) if sources else set()
    return sorted(f for f in sources if f not in live)


def backend_layout(tree):
    """Where keras' backends keep the operations that run: "keras-ops" for
    `backend/NAME/ops/MOD.py`, "keras-flat" for `backend/NAME/MOD.py`, None
    for another package (or both, or neither)."""
    live = live_files(tree, {"keras"})
    ops = "keras/src/backend/tensorflow/ops/nn.py" in live
    flat = "keras/src/backend/tensorflow/nn.py" in live
    return {(True, False): "keras-ops", (False, True): "keras-flat"}.get((ops, flat))
