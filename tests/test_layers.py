"""Per-layer sharpness (analysis.measures.layers) against the exact Hessian's diagonal blocks; its
CLI and figures."""

import csv
import json
import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import ROOT
from torch import nn
from torch.func import functional_call, hessian

from analysis import results
from analysis.measures.hessian import HessianOperator, layer_groups
from analysis.measures.layers import HvpCount, LayerReport, LayerRow, WholeNetwork, layer_report
from pof.progress import Stopped


def _tiny_cnn():
    """conv + BN, conv + BN, linear: 303 parameters in float64, BN with non-trivial running
    statistics."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3),
        nn.BatchNorm2d(6),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 3),
    ).double()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(60, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (60,), generator=g)
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(x)
    return model.eval(), x, y


def _exact_hessian(model, x, y) -> torch.Tensor:
    """The full Hessian of the eval-mode mean cross-entropy, flattened in named_parameters order."""
    names, shapes = zip(*[(n, p.shape) for n, p in model.named_parameters()], strict=True)
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    buffers = dict(model.named_buffers())

    def loss(flat):
        params, i = {}, 0
        for n, s in zip(names, shapes, strict=True):
            params[n] = flat[i : i + math.prod(s)].view(s)
            i += math.prod(s)
        return F.cross_entropy(functional_call(model, {**params, **buffers}, (x,)), y)

    return hessian(loss)(flat0)


@pytest.fixture(scope="module")
def tiny():
    model, x, y = _tiny_cnn()
    H = _exact_hessian(model, x, y)
    names = [n for n, _ in model.named_parameters()]
    offsets = np.cumsum([0] + [p.numel() for p in model.parameters()])
    blocks = {}
    for g, _, idx in layer_groups(model, names):
        cols = torch.cat([torch.arange(offsets[j], offsets[j + 1]) for j in idx])
        blocks[g] = H[cols][:, cols]
    batches = [
        (x[:25], y[:25]),
        (x[25:40], y[25:40]),
        (x[40:], y[40:]),
    ]  # unequal batches: weighted by size
    return model, batches, H, blocks


@pytest.fixture(scope="module")
def counted(tiny):
    """The report with every Hessian-vector product counted where the operator makes it, and the
    progress calls it made."""
    model, batches, _, _ = tiny
    calls, seen = [], []
    original = HessianOperator.hvp

    def hvp(self, v):
        calls.append(1)
        return original(self, v)

    HessianOperator.hvp = hvp
    try:
        report = layer_report(
            model, batches, probes=150, seed=2, progress=lambda *a: seen.append(a)
        )
    finally:
        HessianOperator.hvp = original
    return report, len(calls), seen


def test_every_block_agrees_with_the_exact_diagonal_block(tiny, counted):
    _, _, H, blocks = tiny
    report, _, _ = counted
    assert [r.name for r in report.rows] == list(blocks) and [r.depth for r in report.rows] == list(
        range(5)
    )
    assert [r.kind for r in report.rows] == ["conv", "batchnorm", "conv", "batchnorm", "linear"]
    for row in report.rows:
        block = blocks[row.name]
        exact_trace = torch.trace(block).item()
        assert row.n_params == len(block)
        assert (
            math.isfinite(row.trace_stderr) and row.trace_stderr > 0
        )  # not vacuous: every block has off-diagonals
        assert abs(row.trace - exact_trace) <= 3 * row.trace_stderr, (
            row.name,
            row.trace,
            row.trace_stderr,
            exact_trace,
        )
        assert row.trace_per_param == pytest.approx(row.trace / row.n_params)
        assert row.top_converged and row.top_residual <= 1e-3 * abs(row.top_eigenvalue)
        assert row.top_eigenvalue == pytest.approx(
            torch.linalg.eigvalsh(block)[-1].item(), rel=1e-3
        )
    whole = report.whole
    assert whole.parameters == len(H) and whole.converged
    assert (
        abs(whole.trace - torch.trace(H).item()) <= 3 * whole.trace_stderr
        and whole.trace_stderr > 0
    )
    assert whole.top_eigenvalue == pytest.approx(torch.linalg.eigvalsh(H)[-1].item(), rel=1e-3)
    assert sum(r.share_of_trace for r in report.rows) == pytest.approx(1.0, abs=1e-9)
    assert sum(r.trace for r in report.rows) == pytest.approx(
        whole.trace, rel=1e-9
    )  # the same probes
    assert [r.is_classifier for r in report.rows] == [False] * 4 + [
        True
    ]  # default: the last linear block
    assert report.n_samples == 60 and report.n_probes == 150


def test_no_number_is_computed_twice_and_progress_counts_products(tiny, counted):
    _, _, _, blocks = tiny
    report, n_calls, seen = counted
    h = report.hvp
    # one trace pass for every block and the whole network; each eigenvalue = its Lanczos steps +
    # one residual
    assert h.trace == report.n_probes
    assert (
        all(r.hvp == r.top_steps + 1 for r in report.rows)
        and report.whole.hvp == report.whole.top_steps + 1
    )
    assert h.blocks == sum(r.hvp for r in report.rows) and h.whole_top == report.whole.hvp
    assert n_calls == h.total == h.trace + h.blocks + h.whole_top
    # progress: done counts products, total starts at the planned worst case and ends at what was
    # used
    planned = (
        report.n_probes
        + sum(min(report.max_steps, len(b)) + 1 for b in blocks.values())
        + min(report.max_steps, report.whole.parameters)
        + 1
    )
    assert seen[0][1] == planned and seen[-1][:2] == (h.total, h.total)
    dones = [s[0] for s in seen]
    assert dones == sorted(dones) and all(d <= t for d, t, _ in seen)
    assert {s[2] for s in seen} >= {"trace", "whole network"} | {f"layer {g}" for g in blocks}
    assert set(report.seconds) == {"trace", "blocks", "whole_top", "total"}


def test_round_trip_classifier_and_stop(tiny, counted):
    model, batches, _, _ = tiny
    report, _, _ = counted
    d = json.loads(json.dumps(report.to_dict()))
    assert (
        LayerReport.from_dict({**d, "checkpoint": "x"}) == report
    )  # extra keys of a caller are ignored
    with pytest.raises(ValueError, match="schema"):
        LayerReport.from_dict({**d, "schema": 0})
    with pytest.raises(ValueError, match="not a parameterized layer"):
        layer_report(model, batches, classifier="7", probes=2)
    marked = layer_report(model, batches, classifier="3", probes=2, max_steps=3)
    assert [r.name for r in marked.rows if r.is_classifier] == ["3"] and marked.classifier == "3"
    with pytest.raises(Stopped):
        layer_report(model, batches, probes=5, should_stop=lambda: True)
    assert all(p.grad is None for p in model.parameters())  # the operator was closed after the stop


def test_kinds_of_a_torch_export_program_come_from_the_weights(tiny):
    model, batches, _, _ = tiny
    program = torch.export.export(
        model, (batches[0][0],)
    ).module()  # its submodules are plain nn.Module
    names = [n for n, _ in program.named_parameters()]
    assert [k for _, k, _ in layer_groups(program, names)] == [
        k for _, k, _ in layer_groups(model, names)
    ]
    ln = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4))
    assert [k for _, k, _ in layer_groups(ln, [n for n, _ in ln.named_parameters()])] == [
        "linear",
        "norm",
    ]


# --- the command line --------------------------------------------------------------------------


def _run(*args):
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", "layers", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def two_checkpoints(tmp_path_factory):
    from pof.training.pretrain import PretrainConfig, pretrain

    other = pretrain(
        PretrainConfig(model="mlp", dataset="moons", epochs=1, seed=1),
        tmp_path_factory.mktemp("ck") / "run",
    ).checkpoint("final")
    return ROOT / "assets" / "moons-mlp.safetensors", other


def test_layers_command_writes_json_and_csv_agrees_with_the_library_and_reads_its_cache(
    two_checkpoints, tmp_path
):
    from analysis.cli import EvalData

    a, b = two_checkpoints
    args = [a, b, "--samples", "200", "--probes", "12", "--out", tmp_path, "--quiet"]
    first = json.loads(_run(*args, "--json").stdout)
    assert [r["checkpoint"] for r in first] == [str(a), str(b)]
    jsons = sorted(tmp_path.glob("layers-*.json"))
    assert len(jsons) == 2 and all(p.with_suffix(".csv").exists() for p in jsons)
    files = {json.loads(p.read_text())["checkpoint"]: p for p in jsons}
    for result in first:
        data = EvalData(result["checkpoint"], None, "train", 200)
        lib = layer_report(
            data.model, data.batches(1000), classifier="classifier", probes=12
        ).to_dict()
        for got, want in zip(result["rows"], lib["rows"], strict=True):
            for k in ("trace", "trace_stderr", "top_eigenvalue", "share_of_trace"):
                assert got[k] == pytest.approx(want[k], rel=1e-6), (k, got, want)
        assert result["whole"]["top_eigenvalue"] == pytest.approx(
            lib["whole"]["top_eigenvalue"], rel=1e-6
        )
        assert result["rows"][-1]["is_classifier"] and result["rows"][-1]["name"] == "classifier"
        assert result["eval_set"].startswith("moons train split, 200 of")
        saved = results.load(files[result["checkpoint"]], "layers", LayerReport)
        assert saved.results[result["checkpoint"]] == LayerReport.from_dict(result)
        with open(files[result["checkpoint"]].with_suffix(".csv")) as f:
            rows = list(csv.DictReader(f))
        assert [r["name"] for r in rows] == [r["name"] for r in result["rows"]]
        assert [float(r["trace"]) for r in rows] == pytest.approx(
            [r["trace"] for r in result["rows"]]
        )
    mtimes = [p.stat().st_mtime_ns for p in jsons]
    again = _run(*args)
    assert again.stderr.count("(cached") == 2 and [p.stat().st_mtime_ns for p in jsons] == mtimes
    out = again.stdout
    assert "classifier *" in out and "whole network" in out and f"{b} / {a}:" in out
    ratio_lines = out.splitlines()[out.splitlines().index(f"{b} / {a}:") :]
    pairs = zip(first[0]["rows"], first[1]["rows"], strict=True)
    for ra, rb in [(first[0]["whole"], first[1]["whole"]), *pairs]:
        name = "whole network" if "parameters" in ra else ra["name"]
        line = next(x for x in ratio_lines if x.strip().startswith(name))
        # every ratio ± its error by hand: r sqrt((sa/a)^2 + (sb/b)^2)
        r = rb["trace"] / ra["trace"]
        se = abs(r) * math.hypot(ra["trace_stderr"] / ra["trace"], rb["trace_stderr"] / rb["trace"])
        if ra["trace"] > 2 * ra["trace_stderr"]:
            assert f"{r:.3g} ± {se:.2g}" in line, line
            assert ("≈1" in line.split("±")[-1]) == (abs(r - 1) < 2 * se), line
        r = rb["top_eigenvalue"] / ra["top_eigenvalue"]
        res_a, res_b = ra.get("top_residual"), rb.get("top_residual")
        se = abs(r) * math.hypot(res_a / ra["top_eigenvalue"], res_b / rb["top_eigenvalue"])
        assert f"{r:.3g} ± {se:.2g}" in line, line
    # each checkpoint's table: every trace ± its error, "≈0" exactly where |trace| < 2 se
    table = out.splitlines()[: out.splitlines().index(f"{b} / {a}:")]
    for row in first[0]["rows"]:
        line = next(x for x in table if x.strip().startswith(row["name"]))
        assert f"± {row['trace_stderr']:.2g}" in line
        assert ("≈0" in line) == (abs(row["trace"]) < 2 * row["trace_stderr"]), line


# --- figures -----------------------------------------------------------------------------------


def _row(depth, name, kind, n_params, trace, top, share=0.25, stderr=None) -> LayerRow:
    return LayerRow(
        depth=depth,
        name=name,
        kind=kind,
        n_params=n_params,
        trace=trace,
        trace_stderr=stderr,
        trace_per_param=trace / n_params,
        top_eigenvalue=top,
        top_residual=0.0,
        top_converged=True,
        top_steps=3,
        hvp=4,
        share_of_trace=share,
        is_classifier=name == "fc",
    )


def _report(rows, whole_top: float, whole_per_param: float) -> LayerReport:
    whole = WholeNetwork(100, 1.0, 0.1, whole_per_param, whole_top, 0.0, True, 5, 6)
    return LayerReport(rows, whole, 10, 60, 1e-3, 50, 0, "fc", HvpCount(10, 16, 6, 32), {})


def _fake(scale: float, spread: float = 1.0) -> LayerReport:
    rows = [
        _row(i, n, k, 10 * (i + 1), scale * spread**i, 2 * scale * spread**i, stderr=0.1 * scale)
        for i, (n, k) in enumerate(
            [("conv", "conv"), ("bn", "batchnorm"), ("conv2", "conv"), ("fc", "linear")]
        )
    ]
    return _report(rows, 3 * scale * spread**3, scale)


def test_layer_rows_and_figure():
    from app.figures.layers import layer_rows, layers_figure

    reports = {"before": _fake(1.0), "after": _fake(0.5)}
    rows = layer_rows(reports)
    assert [r["layer"] for r in rows] == ["conv", "bn", "conv2", "fc"] and rows[-1]["classifier"]
    assert all(
        r["trace ratio"] == pytest.approx(0.5) and r["top_eigenvalue ratio"] == pytest.approx(0.5)
        for r in rows
    )
    # both traces ± 10 %: 0.5 * sqrt(0.1^2 + 0.1^2); the eigenvalues' residuals are 0
    assert [r["trace ratio se"] for r in rows] == pytest.approx([0.5 * math.sqrt(0.02)] * 4)
    assert [r["top_eigenvalue ratio se"] for r in rows] == [0.0] * 4
    assert rows[0]["before trace"] == 1.0 and rows[0]["after top_eigenvalue"] == 1.0
    assert "trace ratio" not in layer_rows({"only": _fake(1.0)})[0]

    fig = layers_figure(reports, "trace")
    lines = [t for t in fig.data if t.type == "scatter" and t.mode == "lines+markers"]
    assert [t.name for t in lines] == ["before", "after"] and list(lines[0].x) == [
        "conv",
        "bn",
        "conv2",
        "fc",
    ]
    assert list(lines[0].error_y.array) == pytest.approx([0.1] * 4)
    assert list(lines[0].marker.symbol) == ["circle"] * 3 + ["star"]
    bars = [t for t in fig.data if t.type == "bar"]
    assert len(bars) == 1 and list(bars[0].y) == pytest.approx([0.5] * 4)  # the ratio panel
    assert list(bars[0].error_y.array) == pytest.approx([0.5 * math.sqrt(0.02)] * 4)
    # the band where a ratio cannot be told from 1
    band = [t for t in fig.data if t.type == "scatter" and t.fill == "tonexty"]
    assert len(band) == 1 and band[0].y[0] == pytest.approx(1 - 2 * 0.5 * math.sqrt(0.02))
    assert fig.layout.xaxis.type == "category" and fig.layout.xaxis2.type == "category"
    assert fig.layout.yaxis.type != "log"  # values within one decade
    wide = layers_figure(
        {"x": _fake(1.0, spread=20.0)}, "top_eigenvalue"
    )  # 2 .. 16000: more than 2 decades
    assert wide.layout.yaxis.type == "log" and not [t for t in wide.data if t.type == "bar"]
    with pytest.raises(ValueError):
        layers_figure(reports, "loss")


def test_the_whole_network_reference_sits_at_its_value_on_a_log_axis():
    """The reference is a trace in data units (a shape's annotation would be placed in log10
    units)."""
    from app.figures.layers import layers_figure

    rows = [
        _row(0, "conv", "conv", 10, 1.0, 0.01, 0.5, 0.1),
        _row(1, "fc", "conv", 10, 1.0, 50.0, 0.5, 0.1),
    ]
    report = _report(rows, 80.0, 0.1)
    fig = layers_figure({"sgd": report})
    assert fig.layout.yaxis.type == "log" and not fig.layout.shapes and not fig.layout.annotations
    whole = [t for t in fig.data if t.name == "sgd: whole network"]
    assert len(whole) == 1 and list(whole[0].y) == [80.0, 80.0]


# --- the cost, said before starting ------------------------------------------------------------


def test_the_command_says_how_long_before_starting_and_the_count_falls_in_its_range(tmp_path):
    ckpt = ROOT / "assets" / "moons-mlp.safetensors"
    proc = _run(ckpt, "--samples", "200", "--probes", "12", "--out", tmp_path, "--json")
    first = proc.stderr.splitlines()[0]
    m = re.search(
        r"expected about (.+) \((.+) to (.+)\): \d+ Hessian-vector products likely, (\d+) to "
        r"(\d+) possible, at ([\d.e-]+) to ([\d.e-]+) s each, measured on this model and data",
        first,
    )
    assert first.startswith("moons-mlp.safetensors: ") and m, proc.stderr[:2000]
    (report,) = json.loads(proc.stdout)
    low, high = int(m[4]), int(m[5])
    # the products the report used lie in the planned range
    assert low <= report["hvp"]["total"] <= high, (low, report["hvp"], high)
    assert float(m[6]) <= float(m[7])


def test_a_long_estimate_suggests_traces_only_with_its_own_cost():
    from analysis.measures.layers import LayerCost

    long = LayerCost((48, 300, 438), (33, 41, 81), (0.5, 0.6), True)
    assert long.seconds() == pytest.approx((24.0, 165.0, 262.8)) and long.long
    assert long.text(models=2).startswith(
        "about 5.5 min (48 s to 8.8 min): 300 Hessian-vector products likely, 48 to 438 possible "
        "for each of 2 checkpoints, at 0.5 to 0.6 s each"
    )
    assert long.suggestion("--traces-only") == (
        "That is long: --traces-only (every layer's trace, no block eigenvalues) would take "
        "about 23 s (16 s to 49 s)."
    )
    short = LayerCost((48, 118, 180), (33, 41, 81), (0.1, 0.1), True)
    assert not short.long and short.suggestion("--traces-only") == ""


def test_the_apps_per_layer_job_states_its_measured_estimate_as_its_first_line(tmp_path):
    from analysis.compare import ReportConfig, Subject, compute

    ckpt = str(ROOT / "assets" / "moons-mlp.safetensors")
    said = []
    job = compute(
        tmp_path,
        Subject({"a": ckpt, "b": ckpt}, "moons"),
        ReportConfig(samples=100, probes=6, layer_steps=10),
        "layers",
        progress=lambda done, total, label: said.append(label),
    )
    status = job.status()
    assert status["state"] == "done" and said[0] == status["estimate"], said[:3]
    assert re.fullmatch(
        r"expected about .+ \(.+ to .+\): \d+ Hessian-vector products likely, \d+ to \d+ "
        r"possible for each of 2 checkpoints, at .+ s each, measured on this model and data",
        status["estimate"],
    )
    n = sum(r.hvp.total for r in results_of(job).values())
    low, high = map(int, re.search(r"(\d+) to (\d+) possible", status["estimate"]).groups())
    assert 2 * low <= n <= 2 * high


def results_of(job):
    return results.load(job.path / "result.json", "layers", LayerReport).results


def test_the_planned_products_by_hand_and_the_report_within_them():
    from analysis.measures.layers import layer_cost

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))  # blocks of 25 and 18
    x, y = torch.randn(40, 4), torch.randint(0, 3, (40,))
    cost = layer_cost(model, [(x, y)], probes=6, max_steps=50, timed=0)
    # least: every run stops at its first check (2 steps); likely: 10; most: min(50, its size);
    # each + 1 residual. Whole network (43 parameters): 3, 11, 44; blocks: 3+3, 11+11, 26+19
    assert cost.traces_only_hvp == (6 + 3, 6 + 11, 6 + 44)
    assert cost.hvp == (6 + 3 + 6, 6 + 11 + 22, 6 + 44 + 45)
    assert all(math.isnan(t) for t in cost.seconds_per_hvp)  # nothing timed
    assert cost.counts_text() == "39 Hessian-vector products likely, 15 to 95 possible"
    timed = layer_cost(model, [(x, y)], probes=6, max_steps=50, timed=2)
    assert timed.hvp == cost.hvp and 0 < timed.seconds_per_hvp[0] <= timed.seconds_per_hvp[1]
    used = layer_report(model, [(x, y)], probes=6, max_steps=50).hvp.total
    assert cost.hvp[0] <= used <= cost.hvp[2]
    assert layer_cost(model, [(x, y)], probes=6, block_eigenvalues=False, timed=0).hvp == (
        9,
        17,
        50,
    )
