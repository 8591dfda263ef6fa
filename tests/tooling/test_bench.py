"""kbb.bench's checkout: the A/A control branch (no asv run here)."""

import pytest

from kbb import KbbError
from kbb import bench
from kbb.workspace import Workspace


def test_aa_is_the_pristine_tree_again_with_a_fixed_id(toy_series):
    toy = toy_series
    ws = Workspace.find(toy.root)
    bench.checkout(ws, "toy")
    assert toy.git("rev-parse", "aa^{tree}") == toy.git("rev-parse", "pristine^{tree}")
    assert toy.git("rev-parse", "aa^") == toy.git("rev-parse", "pristine")
    assert toy.git("rev-parse", "aa") != toy.git("rev-parse", "pristine")
    first = toy.git("rev-parse", "aa")
    bench.checkout(ws, "toy")
    assert toy.git("rev-parse", "aa") == first
    # The series is applied too: branch patched is there for the A/B run.
    assert toy.git("rev-parse", "series") != toy.git("rev-parse", "pristine")


def test_a_target_not_pinned_yet_is_an_error_that_says_so(toy):
    with pytest.raises(KbbError, match="not in this workspace's pins.toml yet"):
        bench.checkout(Workspace.find(toy.root), "tf-keras")
