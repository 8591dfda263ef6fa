"""Runs an upstream integration script with stand-in MNIST data, for a
machine that cannot download MNIST (tests/upstream/test_integration.py
--stand-in-mnist):

    python tests/stand_in_mnist.py SCRIPT

`keras.datasets.mnist.load_data` returns seeded random data of MNIST's
shapes and types (uint8 images of 28 x 28, labels 0 to 9, 60000 for
training and 10000 for testing) instead of the real digits; then SCRIPT
runs as `python SCRIPT` would. What the script checks of two
implementations on the same data (numerical_test.py: Keras 3 against
tf_keras) holds on any data; what it would show of MNIST itself does not.
"""

import os
import runpy
import sys

import keras  # first, as the scripts import it (before torch and TensorFlow)
import numpy as np


def load_data(path="mnist.npz"):
    rng = np.random.default_rng(0)

    def part(count):
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        return images, rng.integers(0, 10, size=count, dtype=np.uint8)

    return part(60000), part(10000)


if __name__ == "__main__":
    script = sys.argv[1]
    print(f"stand_in_mnist: {script} runs on stand-in MNIST (random data)")
    keras.datasets.mnist.load_data = load_data
    sys.argv = sys.argv[1:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
