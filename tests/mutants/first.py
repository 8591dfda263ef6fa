"""pytest plugin of `kbb mutants` (kbb.mutants): runs first, within each test file,
the tests named in $KBB_FIRST (a mutant's `First:` line). It only saves
time: with `-x` a run stops at its first failure, and a mutant that these
tests miss still meets every other test."""

import os


def pytest_collection_modifyitems(items):
    first = os.environ.get("KBB_FIRST", "").split()
    if not first:
        return
    files = {}
    for item in items:
        files.setdefault(item.path, len(files))

    def key(item):
        named = any(item.name.split("[")[0] == name for name in first)
        return files[item.path], not named

    items.sort(key=key)
