"""kbb.bench.counters's checks and gate, on fixture records (no ML framework)."""

import copy
import json

from kbb.bench import builds
from kbb.bench import counters

C = 64


def record(cases):
    return {
        "channels": C,
        "keras": "3.15.1",
        "versions": {"jax": "0.10.2"},
        "cases": cases,
    }


def step(batch, extra=()):
    """A made-up layer step: full-size moments and normalization, then the
    per-channel update of the moving statistics, plus `extra` records."""
    nc = batch * 8 * 8 * C
    records = [["sub", nc], ["mul", nc], ["sum", C], ["mul", C], ["add", C], *extra]
    return {"jaxpr": {"records": records, "equations": len(records)}}


def measured(fix_extra, native_records=None):
    makers = {"pristine": lambda b: step(b), "bessel": lambda b: step(b, fix_extra(b))}
    out = {}
    for name, make in makers.items():
        cases = {f"layer/static/N{b}": make(b) for b in (8, 16)}
        out[name] = {"jax": record(cases)}
    if native_records:
        cases = {
            f"layer/static/N{b}": {
                "jaxpr": {"records": native_records(b), "equations": 0}
            }
            for b in (8, 16)
        }
        out["native"] = {"jax": record(cases)}
    return out


def test_the_fix_adding_one_op_per_channel_passes():
    summary = counters.summarize(measured(lambda b: [["mul", C]]))
    assert summary["checks"]["bessel"]["jax"] == []
    added = summary["deltas"]["bessel"]["jax"]["layer/static/N8"]["jaxpr"]["added"]
    assert added == [["mul", C, 1]]
    status, lines = counters.gate(copy.deepcopy(summary), summary)
    assert (status, lines) == (0, [])


def test_an_injected_batch_sized_op_fails_the_linear_check():
    # An op over the whole batch (N x C elements, N = 8 * 8 * batch).
    summary = counters.summarize(
        measured(lambda b: [["mul", C], ["mul", b * 8 * 8 * C]])
    )
    problems = summary["checks"]["bessel"]["jax"]
    assert "layer/static/N8 jaxpr: adds 1 x mul of 32768 elements" in problems
    assert "layer/static/N16 jaxpr: adds 1 x mul of 65536 elements" in problems
    assert any("adds other ops at" in p for p in problems)
    status, lines = counters.gate(copy.deepcopy(summary), summary)
    assert status == 1 and lines == [f"bessel jax: {p}" for p in problems]


def test_an_op_of_unknown_size_fails_the_linear_check():
    summary = counters.summarize(measured(lambda b: [["Mul", None]]))
    assert summary["checks"]["bessel"]["jax"][0].endswith("of None elements")


def test_ops_that_grow_with_the_batch_but_stay_below_c_are_caught():
    # At most C elements each, but more of them at the larger batch.
    summary = counters.summarize(measured(lambda b: [["mul", 1]] * (b // 8)))
    assert summary["checks"]["bessel"]["jax"] == [
        "layer/static jaxpr: adds other ops at layer/static/N8, layer/static/N16"
    ]


NATIVE = "fused kernel"
BUILDS = [
    builds.Build("pristine", "pristine"),
    builds.Build("bessel", "group/bessel", "pristine"),
    builds.Build("native", "group/native", "bessel", NATIVE),
]


def test_a_declared_kernel_change_may_replace_full_size_ops_but_not_add_them():
    def fused(b):
        return [["native_batch_norm", b * 8 * 8 * C], ["mul", C], ["add", C]]

    summary = counters.summarize(measured(lambda b: [], fused), BUILDS)
    assert summary["checks"]["native"]["jax"] == []

    def more(b):
        return fused(b) + [["clone", b * 8 * 8 * C]] * 2

    summary = counters.summarize(measured(lambda b: [], more), BUILDS)
    problems = [
        f"layer/static/N{b} jaxpr: 3 ops of over 64 elements, bessel 2" for b in (8, 16)
    ]
    assert summary["checks"]["native"]["jax"] == problems
    # Not a finding to record: the gate fails, and so does --update.
    status, lines = counters.gate(copy.deepcopy(summary), summary)
    assert status == 1 and lines == [f"native jax: {p}" for p in problems]


def test_a_declared_kernel_change_may_not_add_bytes(tmp_path):
    def fused(b):
        return [["native_batch_norm", b * 8 * 8 * C], ["mul", C], ["add", C]]

    data = measured(lambda b: [], fused)
    for name, more in (("bessel", 100), ("native", 200)):
        for case in data[name]["jax"]["cases"].values():
            case["jaxpr"]["bytes"] = more
    summary = counters.summarize(data, BUILDS)
    assert summary["checks"]["native"]["jax"] == [
        f"layer/static/N{b} jaxpr: bytes 200, bessel 100" for b in (8, 16)
    ]


def stacked(extra):
    """pristine, bessel (one op per channel) and a new group `slow` on it,
    adding `extra(batch)` records."""
    data = measured(lambda b: [["mul", C]])
    cases = {f"layer/static/N{b}": step(b, [["mul", C], *extra(b)]) for b in (8, 16)}
    data["slow"] = {"jax": record(cases)}
    return data


def test_a_new_group_adding_a_full_size_op_fails_the_gate(tmp_path):
    chain = [*BUILDS[:2], builds.Build("slow", "refs/slow", "bessel")]
    summary = counters.summarize(stacked(lambda b: [["mul", b * 8 * 8 * C]]), chain)
    # Against its base (bessel), not against pristine: one multiply added.
    assert summary["checks"]["slow"]["jax"][0] == (
        "layer/static/N8 jaxpr: adds 1 x mul of 32768 elements"
    )
    assert summary["checks"]["bessel"]["jax"] == []
    status, lines = counters.gate(copy.deepcopy(summary), summary)
    assert status == 1 and lines[0].startswith("slow jax: layer/static/N8")
    # --update refuses to record it, and leaves the expected file alone.
    path = tmp_path / "expected.json"
    status, lines = counters.update(path, summary)
    assert status == 1 and "refused" in lines[0] and not path.exists()
    # Declared as a kernel change it still fails: it removes no full-size op.
    declared = [*chain[:2], builds.Build("slow", "refs/slow", "bessel", "x")]
    summary = counters.summarize(stacked(lambda b: [["mul", b * 8 * 8 * C]]), declared)
    assert counters.gate(copy.deepcopy(summary), summary)[0] == 1


def test_a_new_group_adding_per_channel_ops_passes_and_is_recorded(tmp_path):
    chain = [*BUILDS[:2], builds.Build("slow", "refs/slow", "bessel")]
    summary = counters.summarize(stacked(lambda b: [["add", C]]), chain)
    assert summary["checks"]["slow"]["jax"] == []
    assert counters.gate(copy.deepcopy(summary), summary) == (0, [])
    path = tmp_path / "expected.json"
    assert counters.update(path, summary)[0] == 0 and path.is_file()


def test_the_gate_is_exact():
    summary = counters.summarize(measured(lambda b: [["mul", C]]))
    expected = copy.deepcopy(summary)
    found = expected["counters"]["bessel"]["jax"]["layer/static/N8"]["jaxpr"]
    found["equations"] -= 1  # one op fewer expected than measured
    status, lines = counters.gate(expected, summary)
    assert status == 1
    assert lines == [
        "counters/bessel/jax/layer/static/N8/jaxpr/equations: expected 5, measured 6"
    ]


def test_other_versions_are_named_with_the_mend():
    summary = counters.summarize(measured(lambda b: [["mul", C]]))
    expected = copy.deepcopy(summary)
    expected["versions"] = {"jax": "0.9.0"}
    status, lines = counters.gate(expected, summary)
    assert status == 1 and "tox -e counters -- --update" in lines[0]


def test_hlo_text_is_counted_per_instruction_with_its_largest_output():
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks" / "counters"))
    import hlo

    text = """HloModule jit_step

%fused_computation (param_0: f32[8,64]) -> f32[8,64] {
  %param_0 = f32[8,64]{1,0} parameter(0)
  ROOT %multiply.1 = f32[8,64]{1,0} multiply(%param_0, %param_0)
}

ENTRY %main (Arg_0.1: f32[8,64]) -> (f32[64], f32[8,64]) {
  %Arg_0.1 = f32[8,64]{1,0} parameter(0)
  %fusion = f32[8,64]{1,0} fusion(%Arg_0.1), kind=kLoop, calls=%fused

  %constant.2 = f32[] constant(0)
  %reduce.3 = f32[64]{0} reduce(%fusion, %constant.2), dimensions={0}, to_apply=%add
  ROOT %tuple = (f32[64]{0}, f32[8,64]{1,0}) tuple(%reduce.3, %fusion)
}
"""
    counted = hlo.count(text)
    assert counted["records"] == [
        ("parameter", 512),
        ("multiply", 512),
        ("parameter", 512),
        ("fusion", 512),
        ("constant", 1),
        ("reduce", 64),
        ("tuple", 512),
    ]
    assert (counted["instructions"], counted["fusions"]) == (7, 1)


def test_an_update_of_one_backend_keeps_the_others(tmp_path):
    path = tmp_path / "expected.json"
    both = measured(lambda b: [["mul", C]])
    for name in both:
        both[name]["torch"] = copy.deepcopy(both[name]["jax"])
    assert counters.update(path, counters.summarize(both))[0] == 0
    jax_only = measured(lambda b: [["mul", C], ["add", C]])
    assert counters.update(path, counters.summarize(jax_only))[0] == 0
    written = json.loads(path.read_text())
    for part in ("counters", "deltas", "checks"):
        assert set(written[part]["bessel"]) == {"jax", "torch"}
    added = written["deltas"]["bessel"]
    assert len(added["jax"]["layer/static/N8"]["jaxpr"]["added"]) == 2
    assert len(added["torch"]["layer/static/N8"]["jaxpr"]["added"]) == 1
