"""Runs one measurement in a fresh interpreter, for the evidence tests:

    python worker.py cases OUT.npz          Keras moving statistics of every
                                            parity case ($KERAS_BACKEND)
    python worker.py data-parallel OUT.npz  JAX: one device, then DataParallel
    python worker.py save DIR               train, save DIR/model.keras and
                                            DIR/saved.npz (predictions, ...)

KERAS_BACKEND is read once, at the first import of keras, and XLA's host
device count before the first import of jax: each setting needs its own
process. With PYTHONPATH on another keras build, this measures that build.
"""

import sys

import numpy as np

import parity


def cases(out):
    import keras

    results = parity.keras_statistics_of_all_cases()
    np.savez(out, backend=keras.backend.backend(), keras=keras.version(), **results)


def data_parallel(out):
    import keras
    from keras import layers

    x = parity.as_float32_values(np.random.default_rng(41).normal(1.0, 2.0, (20, 2, 3)))

    def fit():
        norm = layers.BatchNormalization(momentum=parity.MOMENTUM)
        model = keras.Sequential([keras.Input((2, 3)), norm])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, x, batch_size=8, epochs=1, shuffle=False, verbose=0)
        return {
            "mean": keras.ops.convert_to_numpy(norm.moving_mean),
            "var": keras.ops.convert_to_numpy(norm.moving_variance),
            "devices": len(norm.moving_variance.value.sharding.device_set),
        }

    single = fit()
    # The accelerators when there are two, else XLA's host devices.
    devices = keras.distribution.list_devices()
    if len(devices) < 2:
        devices = keras.distribution.list_devices("cpu")
    distribution = keras.distribution.DataParallel(devices=devices[:2])
    keras.distribution.set_distribution(distribution)
    distributed = fit()
    np.savez(
        out,
        keras=keras.version(),
        x=x,
        **{f"single.{k}": v for k, v in single.items()},
        **{f"distributed.{k}": v for k, v in distributed.items()},
    )


def save(directory):
    import keras
    from keras import layers

    keras.utils.set_random_seed(43)
    rng = np.random.default_rng(43)
    x, y = rng.normal(size=(32, 6, 6, 2)), rng.normal(size=(32, 3))
    inputs = keras.Input((6, 6, 2))
    h = layers.Conv2D(4, 3)(inputs)
    h = layers.BatchNormalization(momentum=parity.MOMENTUM, name="bn_conv")(h)
    h = layers.Dense(3)(layers.Flatten()(layers.ReLU()(h)))
    outputs = layers.BatchNormalization(momentum=parity.MOMENTUM, name="bn_dense")(h)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="mse")
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    model.save(f"{directory}/model.keras")
    x_test = rng.normal(size=(8, 6, 6, 2)).astype("float32")
    statistics = {}
    for name in ("bn_conv", "bn_dense"):
        layer = model.get_layer(name)
        statistics[name + ".mean"] = keras.ops.convert_to_numpy(layer.moving_mean)
        statistics[name + ".var"] = keras.ops.convert_to_numpy(layer.moving_variance)
    np.savez(
        f"{directory}/saved.npz",
        keras=keras.version(),
        x_test=x_test,
        predictions=model.predict(x_test, verbose=0),
        **statistics,
    )


if __name__ == "__main__":
    task, path = sys.argv[1:]
    {"cases": cases, "data-parallel": data_parallel, "save": save}[task](path)
