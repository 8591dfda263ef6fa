"""Trains one model in one build and one backend, for every batch size and
seed of the settings: `python -m kbb.study.worker MODEL OUT.json`.

The caller (kbb.study.run) puts the build's unpacked wheel first on
PYTHONPATH and sets KERAS_BACKEND; this module checks both. It writes the
runs' records to OUT.json and their final trainable weights to OUT.npz
(for the pairing check); OUT.json last, whole or not at all: a worker
that stopped leaves none, and a resumed run starts it again.
"""

import argparse
import itertools
import json
import math
import os
import sys
import time
from pathlib import Path

import keras
import numpy as np

from kbb.files import write_text
from kbb.study import config
from kbb.study import data
from kbb.study import metrics


def _check_keras(expect_version):
    found = (keras.version(), keras.backend.backend())
    if found != (expect_version, os.environ.get("KERAS_BACKEND")):
        sys.exit(
            f"kbb.study.worker: keras {found[0]} on {found[1]} imported, not "
            f"{expect_version} on $KERAS_BACKEND: put the build's unpacked wheel "
            "first on PYTHONPATH"
        )
    if found[1] == "torch":
        import torch

        torch.set_num_threads(1)


def _z_stats(x, eps, moving=None):
    """(mean of z**2, mean of |z|) over every value, z = (x - mean) /
    sqrt(var + eps): the BN layer's normalized output, before gamma and
    beta, with the `moving` (mean, variance), else the batch's own."""
    axes = tuple(range(x.ndim - 1))
    mean, var = moving or (x.mean(axis=axes), x.var(axis=axes))
    z = (x - mean) / np.sqrt(var + eps)
    return float(np.mean(z * z)), float(np.mean(np.abs(z)))


def _training_mode(probe, x, batch_size, eps):
    """Runs `probe` in training mode on x in batches of batch_size: returns
    (outputs, [[mean z**2, mean |z|] per BN layer]). It updates the moving
    statistics: call it after every inference-mode measurement."""
    outputs, stats = [], []
    for start in range(0, len(x), batch_size):
        batch = probe(x[start : start + batch_size], training=True)
        values = [keras.ops.convert_to_numpy(v) for v in batch]
        outputs.append(values[-1])
        stats.append([_z_stats(v, eps) for v in values[:-1]])
    return np.concatenate(outputs), np.mean(stats, axis=0).tolist()


def _train(model_cfg, split, batch_size, seed, settings):
    """Builds the model from `seed` and fits it: (model, seconds).

    The input is `epochs` seeded permutations of the training split, one
    after the other, fitted in one epoch without shuffling: the same as
    that many shuffled epochs, without Keras' per-epoch overhead, and the
    same order on every backend.
    """
    x_train, y_train, _, _, classes = split
    keras.utils.set_random_seed(seed)
    model = data.build(model_cfg, x_train.shape[1:], classes, settings)
    rate = {"learning_rate": settings.learning_rate}
    optimizer = keras.optimizers.get({"class_name": settings.optimizer, "config": rate})
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        steps_per_execution=config.STEPS_PER_EXECUTION[keras.backend.backend()],
    )
    rng = np.random.default_rng(seed)
    order = np.concatenate(
        [rng.permutation(len(x_train)) for _ in range(model_cfg.epochs(batch_size))]
    )
    x, y = x_train[order], y_train[order]
    started = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=False, verbose=0)
    return model, time.perf_counter() - started


def _inference(probe, moving, x, eps):
    """Inference mode on x: (probabilities, [[mean z**2, mean |z|] per BN
    layer]), with the BN layers' `moving` (mean, variance)."""
    values = probe.predict(x, batch_size=256, verbose=0)
    stats = [_z_stats(v, eps, m) for v, m in zip(values[:-1], moving, strict=True)]
    return values[-1], stats


def run_one(model_cfg, split, batch_size, seed, settings):
    """Trains once and measures: (record, trainable weights)."""
    x_train, _, x_test, y_test, _ = split
    model, seconds = _train(model_cfg, split, batch_size, seed, settings)
    to_numpy = keras.ops.convert_to_numpy
    weights = [to_numpy(w) for w in model.trainable_weights]
    bns = [x for x in model.layers if isinstance(x, keras.layers.BatchNormalization)]
    moving = [(to_numpy(b.moving_mean), to_numpy(b.moving_variance)) for b in bns]
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
    probs, z_test = _inference(probe, moving, x_test, eps)
    _, z_seen = _inference(probe, moving, x_seen, eps)
    train_probs, _ = _training_mode(probe, x_probe, batch_size, eps)
    _, z_training = _training_mode(probe, x_seen, batch_size, eps)
    labels = y_test.tolist()
    probs = probs.astype(float).tolist()
    train_probs = train_probs[:size].astype(float).tolist()
    probe_labels = [labels[i] for i in subset]
    return {
        "model": model_cfg.name,
        "batch_size": batch_size,
        "seed": seed,
        # The values each BN layer reduces per channel: the batch times the
        # positions of its feature map (1 after a Dense layer).
        "n": [batch_size * math.prod(b.input.shape[1:-1]) for b in bns],
        "accuracy": metrics.accuracy(probs, labels),
        "nll": metrics.nll(probs, labels),
        "ece": metrics.ece(probs, labels, settings.ece_bins),
        "train_mode_accuracy": metrics.accuracy(train_probs, probe_labels),
        "agreement": metrics.agreement([probs[i] for i in subset], train_probs),
        # Per BN layer: mean z**2 at inference on the test split and on
        # training samples, and in training mode on the same samples; mean
        # |z| on those samples.
        "moment_inference": [m2 for m2, _ in z_test],
        "moment_inference_train": [m2 for m2, _ in z_seen],
        "moment_training": [m2 for m2, _ in z_training],
        "abs_inference_train": [m1 for _, m1 in z_seen],
        "abs_training": [m1 for _, m1 in z_training],
        "moving_variance_mean": [float(np.mean(var)) for _, var in moving],
        "fit_seconds": round(seconds, 2),
    }, weights


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m kbb.study.worker")
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--expect-version", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    settings = config.QUICK if args.quick else config.FULL
    model_cfg = {m.name: m for m in settings.models}[args.model]
    started = time.perf_counter()
    _check_keras(args.expect_version)
    split = data.load(model_cfg)
    records, arrays = [], {}
    for batch_size, seed in itertools.product(settings.batch_sizes, settings.seeds):
        record, weights = run_one(model_cfg, split, batch_size, seed, settings)
        records.append(record)
        arrays.update({f"{batch_size}-{seed}-{i}": w for i, w in enumerate(weights)})
        print(
            f"  {model_cfg.name} batch {batch_size} seed {seed}: accuracy "
            f"{record['accuracy']:.3f}, {record['fit_seconds']:.0f} s",
            flush=True,
        )
    out = Path(args.out)
    np.savez(out.with_suffix(".npz"), **arrays)
    info = {
        "keras": keras.version(),
        "backend": keras.backend.backend(),
        "keras_file": keras.__file__,
        "records": records,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_text(out, json.dumps(info))


if __name__ == "__main__":
    main()
