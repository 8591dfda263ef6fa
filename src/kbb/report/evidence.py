"""The tables of docs/analysis.md that tests/evidence measures: parity with
other implementations (tf_keras side by side: test_tf_keras_parity.py),
distributed training, checkpoints (see kbb.report)."""

from kbb import BACKENDS
from kbb.report import data
from kbb.report.data import NOT_MEASURED

PARITY_ENVS = ("evidence-pristine", "evidence-patched")  # tf_keras parity


def _parity_table(results, scenario, counts=(2, 3, 8, 64)):
    rows = []
    for env in results.evidence_envs:
        for backend in BACKENDS:
            entries = results.find(scenario=scenario, env=env, backend=backend)
            worst = {}  # n -> the largest difference
            for entry in entries:
                difference = entry["max_relative_difference"]
                worst[entry["n"]] = max(worst.get(entry["n"], 0.0), difference)
            late = data.stale(*entries[:1])
            cells = [
                f"{worst[n]:.1e}{late}" if n in worst else NOT_MEASURED for n in counts
            ]
            rows.append((f"`{env}`", backend, *cells))
    head = ("environment", "Keras backend", *(f"n = {n}" for n in counts))
    return data.table(head, rows, scenario)


def _agreement_table(results):
    rows = []
    for env in results.evidence_envs:
        entries = results.find(scenario="backend-agreement", env=env)
        if entries:
            worst = max(entries, key=lambda e: e["max_relative_difference"])
            cell = data.value(worst, "max_relative_difference", ".1e")
            rows.append((f"`{env}`", len(entries), cell, worst["case"]))
        else:
            rows.append((f"`{env}`", NOT_MEASURED, NOT_MEASURED, NOT_MEASURED))
    head = "environment | cases | largest difference | in case"
    return data.table(head, rows, "backend-agreement")


def _one_value_table(results):
    rows = []
    for rank in (2, 4):
        entry = results.first(scenario="one-value-per-channel", rank=rank)
        pytorch = (
            entry["pytorch"] + ' ("Expected more than 1 value per channel")'
            if entry
            else NOT_MEASURED
        )
        fused = (
            data.value(entry, "fused_moving_variance", ".4f")
            if entry and "fused_moving_variance" in entry
            else "-"
        )
        rows.append(
            (rank, pytorch, data.value(entry, "keras_moving_variance", ".4f"), fused)
        )
    head = "rank | PyTorch | Keras moving_variance | FusedBatchNormV3"
    return data.table(head, rows, "one-value-per-channel")


def parity_values(results):
    device = results.first(scenario="pytorch-parity")
    return {
        "pytorch_parity_table": _parity_table(results, "pytorch-parity"),
        "fused_parity_table": _parity_table(results, "fused-parity"),
        "parity_device": (
            f"PyTorch ran on `{device['device']}`, torch {device['torch']}.\n"
            if device
            else ""
        ),
        "backend_agreement_table": _agreement_table(results),
        "one_value_table": _one_value_table(results),
    }


def tf_keras_parity_values(results):
    counts = sorted({e["n"] for e in results.find(scenario="tf-keras-parity")})
    rows = []
    for n in counts:
        cells = [n, f"{n / (n - 1):.6f}"]
        for env in PARITY_ENVS:
            entry = results.first(scenario="tf-keras-parity", env=env, n=n)
            if entry is None:
                cells += [NOT_MEASURED] * 2
                continue
            low, high = f"{entry['ratio_min']:.6f}", f"{entry['ratio_max']:.6f}"
            ratio = low if low == high else f"{low} to {high}"
            cells += [ratio + data.stale(entry), f"{entry['predictions_gap']:.1e}"]
        rows.append(cells)
    if not rows:
        rows.append([NOT_MEASURED] * 6)
    head = (
        "n | n/(n-1) | ratio, before the fix | predictions, before the fix | "
        "ratio, with the fix | predictions, with the fix"
    )
    return {"tf_keras_parity_table": data.table(head, rows, "tf-keras-parity")}


def _mirrored_rows(results, env, loop, synchronized):
    entry = results.first(
        scenario="mirrored", env=env, loop=loop, synchronized=synchronized
    )
    if not entry:
        return [(f"`{env}`", loop, synchronized, NOT_MEASURED, "", "", "")]
    return [
        (
            f"`{env}`",
            loop,
            synchronized,
            index,
            ", ".join(map(str, replica["count"])),
            ", ".join(f"{v:.4f}" for v in replica["moving_variance"])
            + data.stale(entry),
            f"{replica['max_relative_error']:.1e}",
        )
        for index, replica in enumerate(entry["replicas"])
    ]


def distributed_values(results):
    rows = [
        row
        for env in results.evidence_envs
        for loop in ("custom", "fit")
        for synchronized in (True, False)
        for row in _mirrored_rows(results, env, loop, synchronized)
    ]
    jax_rows = []
    for env in results.evidence_envs:
        entry = results.first(scenario="jax-data-parallel", env=env)
        values = [
            ", ".join(f"{v:.4f}" for v in entry[key]) if entry else NOT_MEASURED
            for key in ("single", "distributed")
        ]
        worst = data.value(entry, "max_relative_difference", ".1e")
        jax_rows.append((f"`{env}`", data.value(entry, "devices", "d"), *values, worst))
    head = (
        "environment | loop | synchronized | replica | count | "
        "moving_variance (3 channels) | error"
    )
    jax_head = "environment | devices | one device | DataParallel | largest difference"
    return {
        "mirrored_table": data.table(head, rows, "mirrored"),
        "jax_table": data.table(jax_head, jax_rows, "jax-data-parallel"),
    }


def checkpoint_values(results):
    rows = []
    for env in results.evidence_envs:
        entry = results.first(scenario="checkpoint", env=env)
        versions = (entry["saved_by"], entry["keras"]) if entry else [NOT_MEASURED] * 2
        difference = data.value(entry, "max_abs_prediction_difference", ".1e")
        rows.append((f"`{env}`", *versions, difference))
    head = (
        "environment | saved by keras | loaded by keras | largest prediction difference"
    )
    return {"checkpoints_table": data.table(head, rows, "checkpoints")}


def noticeable_values(results):
    common = {"scenario": "issue-8982", "backend": "tensorflow"}
    before = results.first(build="pristine", **common)
    after = results.first(build="patched", **common)
    if before and after:
        line = (
            "- Models trained with few values per channel get a larger "
            "`moving_variance`: in the reproduction above (n = 2) it is "
            f"{after['moving_variance']:.4f} instead of "
            f"{before['moving_variance']:.4f} (the data's variance: "
            f"{after['data_variance']:.4f}){data.stale(before, after)}, and inference "
            "outputs shrink by about sqrt((n - 1) / n) against a model trained with "
            "pristine Keras, towards the scale the layer had in training."
        )
    else:
        line = (
            "- Models trained with few values per channel get a larger "
            f"`moving_variance` (reproduction figures: {NOT_MEASURED})."
        )
    return {"noticeable": line}
