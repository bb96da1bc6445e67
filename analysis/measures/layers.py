"""Per-layer sharpness: each layer's diagonal Hessian block next to the whole network.

For every block (a module's parameters: a conv or linear layer with its bias, each normalization
layer on its own, as `hessian.layer_groups` groups them) the report gives the block's trace with its
standard error, the trace per parameter, the block's top eigenvalue with its residual, and the
block's share of the whole trace; and the whole network's trace and top eigenvalue for reference.

What it costs, in Hessian-vector products (each one a full-network forward and double backward):
- the traces: ONE Hutchinson pass of `probes` products. Each probe's v * Hv is summed block by
  block, so the same products give every block's trace and the whole trace; no block has probes
  of its own.
- each block's top eigenvalue: Lanczos on the block (at most `max_steps` steps, stopped once the
  Ritz residual is below `tol` * lambda) plus one product for the true residual. A block product
  is a full-network product with the other blocks' entries zero, so it costs as much as a
  whole-network one; small blocks converge in few steps.
- the whole network's top eigenvalue: the same Lanczos on the full operator.

    from analysis.measures.layers import layer_report
    report = layer_report(model, [(x, y)], classifier="classifier")
    for row in report.rows:
        print(row.name, row.trace, row.top_eigenvalue)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn

from analysis.measures.hessian import (
    BlockOperator,
    HessianOperator,
    hutchinson_trace,
    layer_groups,
    top_eigenvalues,
)
from analysis.results import SCHEMA, Result
from pof.progress import Progress, ShouldStop

# Defaults sized for the bundled digits cnn-small (94k parameters, 1000 images): the whole report
# in about a minute on 2 CPU cores (measured in benchmarks/RESULTS.md). Blocks converge in ~10
# steps at this tolerance; max_steps only bounds the worst case (and the planned total).
PROBES, TOL, MAX_STEPS = 100, 1e-3, 50


@dataclass(frozen=True)
class LayerRow(Result):
    depth: int  # position in the network (parameter registration order)
    name: str  # module name; its parameters form the block
    kind: str  # conv, linear, batchnorm, norm, other
    n_params: int
    trace: float  # Hutchinson estimate of the block's trace
    trace_stderr: float
    trace_per_param: float
    top_eigenvalue: (
        float | None
    )  # largest eigenvalue of the diagonal block (Lanczos); None: traces only
    top_residual: float | None  # |H_b v - lambda v|, |v| = 1
    top_converged: bool | None
    top_steps: int  # Lanczos steps on the block
    hvp: int  # products this block's eigenvalue cost (steps + one residual check)
    share_of_trace: float  # block trace / whole trace
    is_classifier: bool


@dataclass(frozen=True)
class WholeNetwork(Result):
    parameters: int
    trace: float  # from the same Hutchinson pass as the blocks' traces (their sum)
    trace_stderr: float
    trace_per_param: float
    top_eigenvalue: float
    top_residual: float
    converged: bool
    top_steps: int
    hvp: int  # products the top eigenvalue cost


@dataclass(frozen=True)
class HvpCount(Result):
    trace: int  # the single Hutchinson pass (= probes), shared by every block and the whole trace
    blocks: int  # sum of the rows' hvp
    whole_top: int
    total: int  # counted by the operator: trace + blocks + whole_top, nothing else


@dataclass(frozen=True)
class LayerReport(Result):
    rows: list[LayerRow]
    whole: WholeNetwork
    n_probes: int
    n_samples: int
    tol: float
    max_steps: int
    seed: int
    classifier: str | None
    hvp: HvpCount
    seconds: dict[str, float]  # trace, blocks, whole_top, total
    mode: str = "eval (BN running statistics)"
    eval_set: str = ""  # what it was measured on, stated (by the caller, who chose the data)
    schema: int = SCHEMA


class _Meter:
    """Reports progress(done, total, label) in Hessian-vector products. `total` starts as the
    planned worst case; when a Lanczos run converges early the plan drops what it did not use, so
    done / total (and the time left a progress bar derives from it) stays honest."""

    def __init__(self, op: HessianOperator, planned: int, progress: Progress | None):
        self.op, self.start, self.total, self.progress = op, op.n_hvp, planned, progress

    @property
    def done(self) -> int:
        return self.op.n_hvp - self.start

    def tick(self, label: str) -> None:
        if self.progress:
            self.progress(self.done, self.total, label)

    def callback(self, label: str):
        return lambda *_: self.tick(label)

    def settle(self, planned: int, used: int, label: str) -> None:
        self.total -= planned - used
        self.tick(label)


def _pick_classifier(classifier: str | None, groups) -> str | None:
    """The named block, or by default the last linear block (the project's rule for foreign
    models)."""
    names = [g for g, _, _ in groups]
    if classifier is not None:
        if classifier not in names:
            raise ValueError(
                f"classifier {classifier!r} is not a parameterized layer; layers: "
                f"{', '.join(names)}"
            )
        return classifier
    linears = [g for g, kind, _ in groups if kind == "linear"]
    return linears[-1] if linears else None


def layer_report(
    model: nn.Module,
    batches,
    *,
    classifier: str | None = None,
    probes: int = PROBES,
    tol: float = TOL,
    max_steps: int = MAX_STEPS,
    seed: int = 0,
    block_eigenvalues: bool = True,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> LayerReport:
    """Every layer's block trace (one shared Hutchinson pass) and block top eigenvalue (Lanczos),
    and the whole network's, on the mean cross-entropy over `batches` in eval mode.

    `classifier`: the qualified module name of the last layer, marked in the rows (default: the last
    linear block). progress(done, total, label) counts Hessian-vector products against the planned
    total; should_stop() -> True raises pof.progress.Stopped. block_eigenvalues=False leaves the
    blocks' top eigenvalues out (None): on a large model, where each block's Lanczos costs a few
    full-network products, the traces of every layer then cost `probes` products in all."""
    t_start = time.perf_counter()
    op = HessianOperator(model, batches)
    try:
        groups = layer_groups(model, op.names)
        classifier = _pick_classifier(classifier, groups)
        blocks = [BlockOperator(op, idx) for _, _, idx in groups]
        # worst case: every Lanczos run to max_steps (or the block's dimension) plus one residual
        # product
        plan = [min(max_steps, b.dim) + 1 if block_eigenvalues else 0 for b in blocks]
        whole_plan = min(max_steps, op.dim) + 1
        meter = _Meter(op, probes + sum(plan) + whole_plan, progress)
        seconds = {}

        t = time.perf_counter()
        tr = hutchinson_trace(
            op,
            probes,
            seed=seed,
            per_layer=True,
            progress=meter.callback("trace"),
            should_stop=should_stop,
        )
        seconds["trace"] = time.perf_counter() - t
        n_trace = meter.done

        t = time.perf_counter()
        rows = []
        for depth, ((name, kind, _), block, layer, planned) in enumerate(
            zip(groups, blocks, tr.layers, plan, strict=True)
        ):
            before = op.n_hvp
            if block_eigenvalues:
                top = top_eigenvalues(
                    block,
                    1,
                    tol=tol,
                    max_steps=max_steps,
                    seed=seed,
                    should_stop=should_stop,
                    progress=meter.callback(f"layer {name}"),
                )
                found = (top.eigenvalues[0], top.residuals[0], top.converged[0], top.iterations)
            else:
                found = (None, None, None, 0)
            used = op.n_hvp - before
            meter.settle(planned, used, f"layer {name}")
            rows.append(
                LayerRow(
                    depth,
                    name,
                    kind,
                    layer.n_params,
                    layer.trace,
                    layer.trace_stderr,
                    layer.trace_per_param,
                    *found,
                    used,
                    _ratio(layer.trace, tr.trace),
                    name == classifier,
                )
            )
        seconds["blocks"] = time.perf_counter() - t

        t = time.perf_counter()
        before = op.n_hvp
        top = top_eigenvalues(
            op,
            1,
            tol=tol,
            max_steps=max_steps,
            seed=seed,
            should_stop=should_stop,
            progress=meter.callback("whole network"),
        )
        n_whole = op.n_hvp - before
        meter.settle(whole_plan, n_whole, "whole network")
        seconds["whole_top"] = time.perf_counter() - t
        whole = WholeNetwork(
            op.dim,
            tr.trace,
            tr.stderr,
            tr.trace / op.dim,
            top.eigenvalues[0],
            top.residuals[0],
            top.converged[0],
            top.iterations,
            n_whole,
        )
        hvp = HvpCount(n_trace, sum(r.hvp for r in rows), n_whole, meter.done)
    finally:
        op.close()
    seconds["total"] = time.perf_counter() - t_start
    return LayerReport(
        rows, whole, probes, op.n_samples, tol, max_steps, seed, classifier, hvp, seconds
    )


def _ratio(a: float, b: float) -> float:
    return a / b if b != 0 else math.nan


# --- what a report will cost, said before it starts ------------------------------------------

# Lanczos steps per run: at least one convergence check (top_eigenvalues checks every 2 steps);
# a block usually needs about 10 at TOL (see PROBES above)
MIN_STEPS, TYPICAL_STEPS = 2, 10
LONG_SECONDS = 120.0  # above this, suggest traces only


def _duration(seconds: float) -> str:
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class LayerCost(Result):
    """A report's expected cost: Hessian-vector products from the settings, (least, likely, most):
    every Lanczos run stopping at its first convergence check (MIN_STEPS), converging in
    TYPICAL_STEPS, or running to max_steps; times one product's measured time (the fastest and
    slowest of a few timed on this model and data)."""

    hvp: tuple[int, int, int]  # with the settings asked for
    traces_only_hvp: tuple[int, int, int]  # the same without the blocks' eigenvalues
    seconds_per_hvp: tuple[float, float]
    block_eigenvalues: bool
    timed_on: str = " on this model and data"  # what the products were timed on

    def seconds(self, traces_only: bool = False) -> tuple[float, float, float]:
        least, likely, most = self.traces_only_hvp if traces_only else self.hvp
        fast, slow = self.seconds_per_hvp
        return least * fast, likely * (fast + slow) / 2, most * slow

    @property
    def long(self) -> bool:
        return self.seconds()[1] > LONG_SECONDS

    def text(self, models: int = 1) -> str:
        """'about 63 s (24 s to 4.0 min): 118 Hessian-vector products likely, 48 to 438
        possible, at 0.54 to 0.55 s each, measured ...'; with `models` reports, all of them."""
        lo, mid, hi = (models * s for s in self.seconds())
        (n_lo, n_mid, n_hi), (t_lo, t_hi) = self.hvp, self.seconds_per_hvp
        each = f" for each of {models} checkpoints" if models > 1 else ""
        return (
            f"about {_duration(mid)} ({_duration(lo)} to {_duration(hi)}): {n_mid} "
            f"Hessian-vector products likely, {n_lo} to {n_hi} possible{each}, at {t_lo:.2g} to "
            f"{t_hi:.2g} s each, measured{self.timed_on}"
        )

    def counts_text(self, models: int = 1) -> str:
        """The products alone, for when none was timed."""
        (n_lo, n_mid, n_hi), each = self.hvp, f" for each of {models} checkpoints"
        return (
            f"{n_mid} Hessian-vector products likely, {n_lo} to {n_hi} possible"
            f"{each if models > 1 else ''}"
        )

    def suggestion(self, how: str, models: int = 1) -> str:
        """Traces only (`how`: the flag or field that asks for it), with its own cost, when the
        report is likely long ('' otherwise)."""
        if not self.long or not self.block_eigenvalues:
            return ""
        lo, mid, hi = (models * s for s in self.seconds(traces_only=True))
        return (
            f"That is long: {how} (every layer's trace, no block eigenvalues) would take about "
            f"{_duration(mid)} ({_duration(lo)} to {_duration(hi)})."
        )


def layer_cost(
    model: nn.Module,
    batches,
    *,
    probes: int = PROBES,
    max_steps: int = MAX_STEPS,
    block_eigenvalues: bool = True,
    timed: int = 2,
    timed_on: str = " on this model and data",
) -> LayerCost:
    """What layer_report with these settings will cost on (model, batches): the products it plans
    and the measured time of `timed` of them, after one untimed warm-up product (timed=0: none,
    the counts alone; the times are then NaN)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    params = [p for _, p in named]
    dims = [
        sum(params[j].numel() for j in idx)
        for _, _, idx in layer_groups(model, [n for n, _ in named])
    ]
    dim = sum(p.numel() for p in params)

    def planned(steps: int) -> tuple[int, int]:  # (traces only, all) if every run takes steps
        whole = min(steps, max_steps, dim) + 1
        blocks = sum(min(steps, max_steps, d) + 1 for d in dims)
        return probes + whole, probes + whole + blocks

    plans = [planned(steps) for steps in (MIN_STEPS, TYPICAL_STEPS, max_steps)]
    times = [math.nan]
    if timed:  # building the operator is a forward and backward: only when timing
        op = HessianOperator(model, batches)
        try:
            gen, times = torch.Generator().manual_seed(0), []
            for i in range(timed + 1):
                v = [torch.randn(p.shape, generator=gen).to(p) for p in op.params]
                t = time.perf_counter()
                op.hvp(v)
                if i:  # the first pays one-off allocations
                    times.append(time.perf_counter() - t)
        finally:
            op.close()
    traces_only = tuple(p[0] for p in plans)
    hvp = tuple(p[1] for p in plans) if block_eigenvalues else traces_only
    return LayerCost(hvp, traces_only, (min(times), max(times)), block_eigenvalues, timed_on)
