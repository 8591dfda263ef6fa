"""A model trained and saved (`.keras`) with pristine keras 3.15.1 loads in
the installed build and predicts the same: the patch changes how the moving
statistics are updated, never how they are used. Training it further then
updates them with the installed build's rule.

The pristine build runs in a worker with the files of the pristine wheel
(`kbb wheel keras --ref pristine`; a pure-Python wheel runs unpacked) in
front of PYTHONPATH; the installed build loads its checkpoint here.
"""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from parity import assert_rule

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pristine_keras(tmp_path_factory):
    """A folder holding the pristine keras wheel's files."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    wheel = subprocess.run(
        [sys.executable, "-m", "kbb", "wheel", "keras", "--ref", "pristine"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()[-1]
    target = tmp_path_factory.mktemp("pristine-keras")
    with zipfile.ZipFile(wheel) as files:
        files.extractall(target)
    return target


def test_pristine_checkpoint(
    pristine_keras, worker, tmp_path, rule, other_rule, record
):
    import keras

    worker("save", tmp_path, pythonpath=pristine_keras)
    saved = dict(np.load(tmp_path / "saved.npz"))
    assert "+" not in str(saved["keras"])  # saved by the pristine build
    model = keras.saving.load_model(tmp_path / "model.keras")
    for name in ("bn_conv", "bn_dense"):
        layer = model.get_layer(name)
        loaded = keras.ops.convert_to_numpy(layer.moving_variance)
        np.testing.assert_array_equal(loaded, saved[name + ".var"])
    predictions = model.predict(saved["x_test"], verbose=0)
    if "native" not in keras.version():
        # The Bessel patch reads the same variables with the same code at
        # inference: the same bits.
        np.testing.assert_array_equal(predictions, saved["predictions"])
    else:
        # patches/keras/native/ runs inference through the fused kernel,
        # which folds gamma * rsqrt(var + eps) before multiplying: other
        # float32 roundings (2**-24 relative each, a few per value, summed
        # over the 64 inputs of the Dense layer; seen: 1.2e-7). 1e-5 of the
        # output scale is far above that and far below what reading other
        # statistics would change: the rules differ by n / (n - 1), here
        # n = 64 (bn_conv) and 4 (bn_dense), so 1.6 % of the variance.
        scale = np.max(np.abs(saved["predictions"]))
        np.testing.assert_allclose(
            predictions, saved["predictions"], rtol=0, atol=1e-5 * scale
        )
    # Training goes on from the saved statistics, with this build's rule.
    layer = model.get_layer("bn_conv")
    batch = np.random.default_rng(59).normal(size=(2, 4, 4, 4)).astype("float32")
    layer(batch, training=True)
    actual = [
        keras.ops.convert_to_numpy(v)
        for v in (layer.moving_mean, layer.moving_variance)
    ]
    start = {"mean": saved["bn_conv.mean"], "var": saved["bn_conv.var"]}
    # float32 layer: a few roundings of 2**-24 per update, well below 1e-5.
    assert_rule(actual, [batch], rule, other_rule, 1e-5, scale=1.0, **start)
    record(
        scenario="checkpoint",
        saved_by=str(saved["keras"]),
        max_abs_prediction_difference=float(
            np.max(np.abs(predictions - saved["predictions"]))
        ),
    )
