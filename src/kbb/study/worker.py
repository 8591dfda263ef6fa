"""Trains one model in one build and one backend, for every batch size and
seed of the settings: `python -m study.worker MODEL OUT.json`.

The caller (study/run.py) puts the build's unpacked wheel first on
PYTHONPATH and sets KERAS_BACKEND; this module checks both. It writes the
runs' records to OUT.json and their final trainable weights to OUT.npz
(for the pairing check).
"""

import argparse
import json
import os
import sys
import time

import numpy as np

from kbb.study import config
from kbb.study import data
from kbb.study import metrics


def _fail(message):
    sys.exit(f"study.worker: {message}")


def _load_keras(expect_version):
    import keras

    if keras.version() != expect_version:
        _fail(
            f"keras {keras.version()} imported, {expect_version} expected: "
            "put the build's unpacked wheel first on PYTHONPATH"
        )
    if keras.backend.backend() != os.environ.get("KERAS_BACKEND"):
        _fail(
            f"backend {keras.backend.backend()}, KERAS_BACKEND says "
            f"{os.environ.get('KERAS_BACKEND')}"
        )
    if keras.backend.backend() == "torch":
        import torch

        torch.set_num_threads(1)
    return keras


def _numpy(keras, value):
    return keras.ops.convert_to_numpy(value)


def _z_stats(x, mean, var, eps):
    """(mean of z**2, mean of |z|) over every value, z = (x - mean) /
    sqrt(var + eps): the BN layer's normalized output, before gamma and
    beta."""
    z = (x - mean) / np.sqrt(var + eps)
    return float(np.mean(z * z)), float(np.mean(np.abs(z)))


def _training_mode(keras, probe, x, order, batch_size, eps):
    """Runs `probe` in training mode on x[order] in batches of batch_size:
    returns (outputs in order, [[mean z**2, mean |z|] per BN layer]). It
    updates the moving statistics: call it after every inference-mode
    measurement."""
    outputs, stats = [], []
    for start in range(0, len(order), batch_size):
        batch = x[order[start : start + batch_size]]
        values = [_numpy(keras, v) for v in probe(batch, training=True)]
        outputs.append(values[-1])
        row = []
        for v in values[:-1]:
            axes = tuple(range(v.ndim - 1))
            row.append(_z_stats(v, v.mean(axis=axes), v.var(axis=axes), eps))
        stats.append(row)
    return np.concatenate(outputs), np.mean(stats, axis=0).tolist()


def _train(keras, model_cfg, split, batch_size, seed, settings):
    """Builds the model from `seed` and fits it: (model, seconds).

    The input is `epochs` seeded permutations of the training split, one
    after the other, fitted in one epoch without shuffling: the same as
    that many shuffled epochs, without Keras' per-epoch overhead, and the
    same order on every backend.
    """
    x_train, y_train, _, _, classes = split
    keras.utils.set_random_seed(seed)
    model = data.build(model_cfg, x_train.shape[1:], classes, settings)
    optimizer = keras.optimizers.get(
        {
            "class_name": settings.optimizer,
            "config": {"learning_rate": settings.learning_rate},
        }
    )
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        steps_per_execution=config.STEPS_PER_EXECUTION[keras.backend.backend()],
    )
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(len(x_train)) for _ in range(model_cfg.epochs(batch_size))]
    )
    started = time.perf_counter()
    model.fit(
        x_train[order],
        y_train[order],
        batch_size=batch_size,
        epochs=1,
        shuffle=False,
        verbose=0,
    )
    return model, time.perf_counter() - started


def _inference(keras, probe, bns, x, eps):
    """Inference mode on x: (probabilities, [[mean z**2, mean |z|] per BN
    layer], the moving variances)."""
    values = probe.predict(x, batch_size=256, verbose=0)
    moving = [
        (_numpy(keras, b.moving_mean), _numpy(keras, b.moving_variance)) for b in bns
    ]
    stats = [
        _z_stats(v, m, var, eps)
        for v, (m, var) in zip(values[:-1], moving, strict=True)
    ]
    return values[-1], stats, [var for _, var in moving]


def run_one(keras, model_cfg, split, batch_size, seed, settings):
    """Trains once and measures: (record, trainable weights)."""
    x_train, _, x_test, y_test, _ = split
    model, seconds = _train(keras, model_cfg, split, batch_size, seed, settings)
    weights = [_numpy(keras, w) for w in model.trainable_weights]
    bns = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    probe = keras.Model(model.input, [b.input for b in bns] + [model.output])
    eps = settings.epsilon
    # Seeded subsets for the training-mode passes (batches of batch_size):
    # of the test set, completed by training samples if it is smaller, and
    # of the training set.
    rng = np.random.default_rng(seed)
    size = min(settings.probe_size, len(x_test))
    subset = rng.permutation(len(x_test))[:size]
    x_probe = np.concatenate([x_test[subset], x_train[: settings.probe_size - size]])
    x_seen = x_train[rng.permutation(len(x_train))[: settings.probe_size]]
    # Inference mode first: the training-mode passes move the statistics.
    probs, z_test, variances = _inference(keras, probe, bns, x_test, eps)
    _, z_seen, _ = _inference(keras, probe, bns, x_seen, eps)
    batches = np.arange(settings.probe_size)
    train_probs, _ = _training_mode(keras, probe, x_probe, batches, batch_size, eps)
    _, z_training = _training_mode(keras, probe, x_seen, batches, batch_size, eps)
    labels = y_test.tolist()
    probs = probs.astype(float).tolist()
    train_probs = train_probs[:size].astype(float).tolist()
    return {
        "model": model_cfg.name,
        "batch_size": batch_size,
        "seed": seed,
        "n": data.values_per_channel(model_cfg, batch_size),
        "accuracy": metrics.accuracy(probs, labels),
        "nll": metrics.nll(probs, labels),
        "ece": metrics.ece(probs, labels, settings.ece_bins),
        "train_mode_accuracy": metrics.accuracy(
            train_probs, [labels[i] for i in subset]
        ),
        "agreement": metrics.agreement([probs[i] for i in subset], train_probs),
        # Per BN layer: mean z**2 at inference on the test split and on
        # training samples, and in training mode on the same samples; mean
        # |z| on those samples.
        "moment_inference": [m2 for m2, _ in z_test],
        "moment_inference_train": [m2 for m2, _ in z_seen],
        "moment_training": [m2 for m2, _ in z_training],
        "abs_inference_train": [m1 for _, m1 in z_seen],
        "abs_training": [m1 for _, m1 in z_training],
        "moving_variance_mean": [float(np.mean(v)) for v in variances],
        "fit_seconds": round(seconds, 2),
    }, weights


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m study.worker")
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--expect-version", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    settings = config.QUICK if args.quick else config.FULL
    model_cfg = {m.name: m for m in settings.models}[args.model]
    started = time.perf_counter()
    keras = _load_keras(args.expect_version)
    split = data.load(model_cfg)
    records, arrays = [], {}
    for batch_size in settings.batch_sizes:
        for seed in settings.seeds:
            record, weights = run_one(
                keras, model_cfg, split, batch_size, seed, settings
            )
            records.append(record)
            for i, w in enumerate(weights):
                arrays[f"{batch_size}-{seed}-{i}"] = w
            print(
                f"  {model_cfg.name} batch {batch_size} seed {seed}: "
                f"accuracy {record['accuracy']:.3f}, "
                f"{record['fit_seconds']:.0f} s",
                flush=True,
            )
    np.savez(args.out[: -len(".json")] + ".npz", **arrays)
    info = {
        "keras": keras.version(),
        "backend": keras.backend.backend(),
        "keras_file": keras.__file__,
        "records": records,
    }
    info["seconds"] = round(time.perf_counter() - started, 1)
    with open(args.out, "w") as f:
        json.dump(info, f)


if __name__ == "__main__":
    main()
