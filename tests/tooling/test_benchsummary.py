"""kbb.benchsummary on canned `asv compare --split` output (no asv run)."""

import json
import textwrap

from kbb import benchsummary

ENV = "vm/virtualenv-py3.11-jax0.10.2-torch2.13.0-KERAS_BACKEND{}-TF_CPP_MIN_LOG_LEVEL2"
HEAD = (
    "| Change   | Before [f7a74553] <upstream>   | After [9b6edef1] <patched>   "
    "| Ratio   | Benchmark (Parameter)   |\n"
    "|----------|------|------|---------|------|\n"
)


def table(title, *rows):
    lines = [f"| {' | '.join(row)} |" for row in rows]
    return f"\n{title}\n\n{HEAD}" + "\n".join(lines) + "\n"


AB = (
    "· Discovering benchmarks\n"
    + table(
        "Benchmarks that have improved:",
        (
            "-",
            "0.5046854295942467",
            "0.004",
            "0.01",
            "statistic.MovingVariance.track_moving_variance_error(2) ["
            + ENV.format("jax")
            + "]",
        ),
    )
    + table(
        "Benchmarks that have stayed the same:",
        (
            "",
            "1.00±0.1ms",
            "1.10±0.2ms",
            "~1.10",
            "bn_step.BatchNormTrainStep.time_train_step('256x64', False) ["
            + ENV.format("jax")
            + "]",
        ),
        (
            "",
            "230983.0",
            "231047.0",
            "1.00",
            "counters.XlaCost.track_flops('256x64') [" + ENV.format("jax") + "]",
        ),
        (
            "",
            "n/a",
            "n/a",
            "n/a",
            "bn_step.BatchNormTrainStep.time_train_step('256x64', True) ["
            + ENV.format("torch")
            + "]",
        ),
        (
            "",
            "1.2G",
            "1.2G",
            "1.00",
            "conv_fit.ConvNetFit.peakmem_fit [" + ENV.format("tensorflow") + "]",
        ),
    )
)

AA = table(
    "Benchmarks that have stayed the same:",
    (
        "",
        "1.00±0.1ms",
        "0.95±0.1ms",
        "0.95",
        "bn_step.BatchNormTrainStep.time_train_step('256x64', False) ["
        + ENV.format("jax")
        + "]",
    ),
    (
        "",
        "10.0±1ms",
        "10.8±1ms",
        "~1.08",
        "bn_step.BatchNormTrainStep.time_train_step('4096x1024', False) ["
        + ENV.format("jax")
        + "]",
    ),
)


def test_parse_sections_names_and_backends():
    rows = benchsummary.parse(AB)
    assert [r.section for r in rows] == ["improved"] + ["same"] * 4
    first, timing = rows[0], rows[1]
    assert first.name == "statistic.MovingVariance.track_moving_variance_error(2)"
    assert (first.mark, first.kind, first.backend) == ("-", "track", "jax")
    assert timing.name == "bn_step.BatchNormTrainStep.time_train_step('256x64', False)"
    assert (timing.kind, timing.ratio_value()) == ("time", 1.10)
    assert rows[3].ratio_value() != rows[3].ratio_value()  # n/a is NaN
    assert rows[4].backend == "tensorflow"


def test_noise_floor_is_the_largest_ratio_either_way():
    floor = benchsummary.noise_floor(benchsummary.parse(AA))
    assert floor == 1.08  # ~1.08 counts: the floor is the ratio itself


def test_markdown_has_ratios_noise_floor_and_counter_deltas():
    text = benchsummary.markdown(
        benchsummary.parse(AB), benchsummary.parse(AA), factor=1.25, title="T"
    )
    assert text.startswith("# T\n")
    assert "- Gate factor: 1.25" in text
    assert "- A/A noise floor: 1.08" in text
    assert "- A/A control: the gate flags 0 of its benchmark(s)." in text
    assert "- Gate (all): PASSED: 0 regression(s)." in text
    assert "## Improved (1)" in text and "## Not significantly changed (4)" in text
    assert (
        "| `BatchNormTrainStep.time_train_step('256x64', False)` | jax "
        "| 1.00±0.1ms | 1.10±0.2ms | ~1.10 | 0.95 |  |"
    ) in text
    assert (
        "| `XlaCost.track_flops('256x64')` | jax | 230983.0 | 231047.0 | 1.00 "
        "|  | +64 |"
    ) in text


def test_gate_counts_worse_and_failed_and_quick_mode_only_counters():
    worse = textwrap.dedent(
        table(
            "Benchmarks that have got worse:",
            (
                "+",
                "1.00±0.01ms",
                "2.00±0.01ms",
                "2.00",
                "m.C.time_x [" + ENV.format("jax") + "]",
            ),
            (
                "+",
                "100.0",
                "200.0",
                "2.00",
                "m.C.track_ops [" + ENV.format("jax") + "]",
            ),
            (
                "!",
                "1.00±0.01ms",
                "failed",
                "n/a",
                "m.C.time_y [" + ENV.format("jax") + "]",
            ),
        )
    )
    rows = benchsummary.parse(worse)
    assert len(benchsummary.regressions(rows, "all")) == 3
    assert [r.name for r in benchsummary.regressions(rows, "counters")] == [
        "m.C.track_ops",
        "m.C.time_y",
    ]
    assert "Gate (all): FAILED: 3 regression(s)." in benchsummary.markdown(rows)


def test_a_noisy_aa_control_leaves_timings_within_its_floor_unresolved():
    def rows(title, *cells):
        return benchsummary.parse(
            table(
                title,
                *[
                    (m, b, a, r, f"m.C.{n} [{ENV.format('jax')}]")
                    for m, b, a, r, n in cells
                ],
            )
        )

    aa = rows(
        "Benchmarks that have got worse:",
        ("+", "1.00±0.01ms", "1.50±0.01ms", "1.50", "time_x"),
    )
    ab = rows(
        "Benchmarks that have got worse:",
        ("+", "1.00±0.01ms", "1.40±0.01ms", "1.40", "time_x"),
    )
    status, real, unresolved = benchsummary.verdict(ab, aa)
    assert (status, real, [r.name for r in unresolved]) == (
        "inconclusive",
        [],
        ["m.C.time_x"],
    )
    text = benchsummary.markdown(ab, aa, factor=1.25)
    assert "A/A control: the gate flags 1 of its benchmark(s) (the floor" in text
    assert "INCONCLUSIVE: 0 regression(s), 1 flagged timing(s) within" in text
    # Beyond the floor it counts; so does a counter, whatever the floor.
    ab = rows(
        "Benchmarks that have got worse:",
        ("+", "1.00±0.01ms", "1.60±0.01ms", "1.60", "time_x"),
        ("+", "100", "200", "2.00", "track_ops"),
    )
    status, real, _ = benchsummary.verdict(ab, aa)
    assert (status, [r.name for r in real]) == (
        "failed",
        ["m.C.time_x", "m.C.track_ops"],
    )


def test_main_writes_the_file_and_returns_the_gate(tmp_path):
    compare, output = tmp_path / "compare.txt", tmp_path / "out.md"
    compare.write_text(AB)
    assert benchsummary.main([str(compare), "--factor", "1.25", "-o", str(output)]) == 0
    assert "## Improved (1)" in output.read_text()


def test_exact_values_replace_the_rounded_counters(tmp_path):
    # asv compare rounds a column of plain numbers (tabulate): 9.00171e+07.
    columns = ["result", "params", "version", "started_at", "duration"]
    env = "virtualenv-py3.11-KERAS_BACKENDjax"
    for commit, flops in (("a" * 40, 90017088.0), ("b" * 40, 90017152.0)):
        folder = tmp_path / "vm"
        folder.mkdir(exist_ok=True)
        (folder / f"{commit[:8]}-{env}.json").write_text(
            json.dumps(
                {
                    "commit_hash": commit,
                    "env_name": env,
                    "result_columns": columns,
                    "results": {
                        "counters.XlaCost.track_flops": [
                            [1.0, flops],
                            [["'256x64'", "'8x112x112x64'"]],
                            "v",
                            0,
                            0.1,
                        ]
                    },
                }
            )
        )
    before = benchsummary.exact_values(tmp_path, "a" * 40)
    after = benchsummary.exact_values(tmp_path, "b" * 40)
    key = ("counters.XlaCost.track_flops('8x112x112x64')", f"vm/{env}")
    assert (before[key], after[key]) == (90017088.0, 90017152.0)
    rounded = table(
        "Benchmarks that have stayed the same:",
        ("", "9.00171e+07", "9.00172e+07", "1.00", f"{key[0]} [{key[1]}]"),
    )
    text = benchsummary.markdown(benchsummary.parse(rounded), exact=(before, after))
    assert "| 90017088 | 90017152 | 1.00 | +64 |" in text
