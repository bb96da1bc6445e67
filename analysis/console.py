"""How `python -m analysis` talks on a terminal: progress bars on stderr, and each measurement's
report as text (or a CSV beside its JSON). The command table (analysis.cli) names which to use."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, NamedTuple

from analysis.uncertainty import format_ratio, ratio, within_noise


def bar(quiet: bool):
    """A tqdm bar per stage label on stderr, as a pof.progress callback, and its closer."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bars = {}

    def progress(done: int, total: int, label: str, **_) -> None:
        bar = bars.get(label)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = bars[label] = tqdm(total=total, desc=label, dynamic_ncols=True, file=sys.stderr)
        bar.update(done - bar.n)

    return progress, lambda: [b.close() for b in bars.values()]


def hvp_bar(quiet: bool, desc: str):
    """One bar for the whole per-layer report, counted in Hessian-vector products: its total
    shrinks when a Lanczos run converges early, so the time left tqdm shows is an upper bound."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, unit="hvp", dynamic_ncols=True, file=sys.stderr)

    def progress(done: int, total: int, label: str, **_) -> None:
        bar.total = total
        bar.set_postfix_str(label, refresh=False)
        bar.update(done - bar.n)

    return progress, bar.close


class Found(NamedTuple):
    """One report of a measurement: its label, the result, its file and the data it was on."""

    label: str
    result: Any
    path: Path
    eval_set: str


# --- how each measurement is shown -------------------------------------------------------------


def show_hessian(found: list[Found]) -> None:
    ((checkpoint, r, path, _),) = found
    top = r.top
    print(f"{checkpoint}: {r.parameters} parameters; {r.eval_set}")
    values = ", ".join(
        f"{v:.6g}{'' if c else ' (not converged)'}"
        for v, c in zip(top.eigenvalues, top.converged, strict=True)
    )
    print(f"top eigenvalues: {values}  [{top.iterations} Lanczos steps, tol {top.tol:g}]")
    if r.trace is not None:
        t = r.trace
        print(f"trace: {t.trace:.6g} ± {t.stderr:.2g} (Hutchinson, {t.n_probes} probes)")
        for layer in t.layers:
            top_l = "" if layer.top_eigenvalue is None else f"  top {layer.top_eigenvalue:.4g}"
            print(
                f"  {layer.name:<28} {layer.kind:<10} {layer.n_params:>9} params  trace "
                f"{layer.trace:.4g} ± {layer.trace_stderr:.2g}"
                f"{' (≈0, within noise)' if within_noise(layer.trace, layer.trace_stderr) else ''}"
                f"  per param {layer.trace_per_param:.3g}{top_l}"
            )
    ll = r.last_layer
    if ll is None:
        print(f"last layer: not computed ({r.split})")
    else:
        print(
            f"last layer (exact, {ll.n_samples} samples, {ll.method}): top "
            + ", ".join(f"{v:.6g}" for v in ll.top_eigenvalues)
            + f"; trace {ll.trace:.6g}"
        )
    if r.density is not None:
        d = r.density
        print(
            f"density: {d.steps} Lanczos steps x {len(d.nodes)} runs, support "
            f"[{min(d.grid):.4g}, {max(d.grid):.4g}]"
        )
    if r.cross_check is not None:
        show_cross_check(r.cross_check)
    print(f"saved: {path}")


def show_cross_check(c) -> None:
    """This project's estimates and PyHessian's side by side, with their agreement."""
    print(f"cross-check with PyHessian ({c.how}):")
    print(f"  {'':<18} {'this project':>22} {'PyHessian':>22}  rel. diff  agree")
    for row in c.rows:
        ours = f"{row.ours:.6g} ± {row.ours_error:.2g}"
        theirs = f"{row.pyhessian:.6g} ± {row.pyhessian_error:.2g}"
        verdict = "yes" if row.within else f"NO (|diff| > {row.bound:.2g})"
        print(
            f"  {row.quantity:<18} {ours:>22} {theirs:>22}  "
            f"{row.relative_difference:>9.2%}  {verdict}"
        )
    print(
        "  (± : an eigenvalue's residual |Hv - λv|, a trace's standard error; agree: within "
        "the sum of the residuals, or 2 standard errors of the traces' difference)"
    )


def layers_csv(path: Path, report) -> None:
    """The per-layer table beside its JSON, as CSV (written once)."""
    import csv
    import io

    from pof.files import write_atomic

    path = path.with_suffix(".csv")
    if path.exists():
        return
    rows = [row.to_dict() for row in report.rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def show_layers(found: list[Found]) -> None:
    """Each checkpoint's table, then per layer the ratios of the others to the first."""
    for checkpoint, r, path, _ in found:
        _print_layers(checkpoint, r)
        print(f"  saved: {path} and {path.with_suffix('.csv').name}")
    first = found[0]
    for other in found[1:]:
        _print_ratios((first.label, first.result), (other.label, other.result))


def _noise(value, stderr) -> str:
    return "≈0" if within_noise(value, stderr) else ""


def _print_layers(checkpoint: str, r) -> None:
    w = r.whole
    print(f"{checkpoint}: {w.parameters} parameters; {r.eval_set}; {r.mode}")
    print(
        f"  {'layer':<28} {'kind':<10} {'params':>9}  {'trace':>10} ± {'se':<8}    "
        f"{'per param':>10}  {'top eig':>10}  {'share':>7}"
    )
    for row in r.rows:
        top = (
            "-"
            if row.top_eigenvalue is None
            else f"{row.top_eigenvalue:.4g}" + ("" if row.top_converged else "?")
        )
        name = row.name + (" *" if row.is_classifier else "")
        print(
            f"  {name:<28} {row.kind:<10} {row.n_params:>9}  {row.trace:>10.4g} ± "
            f"{row.trace_stderr:<8.2g} {_noise(row.trace, row.trace_stderr):<2}  "
            f"{row.trace_per_param:>10.3g}  {top:>10}  {100 * row.share_of_trace:>6.1f}%"
        )
    top = f"{w.top_eigenvalue:.4g}" + ("" if w.converged else "?")
    print(
        f"  {'whole network':<28} {'':<10} {w.parameters:>9}  {w.trace:>10.4g} ± "
        f"{w.trace_stderr:<8.2g} {_noise(w.trace, w.trace_stderr):<2}  "
        f"{w.trace_per_param:>10.3g}  {top:>10}  {100.0:>6.1f}%"
    )
    h, s = r.hvp, r.seconds
    print(f"  * classifier; ? not converged to tol {r.tol:g}; ± one standard error")
    if any(within_noise(row.trace, row.trace_stderr) for row in r.rows):
        print(
            "  ≈0: within noise (|trace| < 2 se), indistinguishable from zero; a negative "
            "Hutchinson estimate is noise, not negative curvature"
        )
    print(
        f"  Hessian-vector products: {h.trace} for every trace ({r.n_probes} probes, one pass), "
        f"{h.blocks} for the block eigenvalues, {h.whole_top} for the whole network's; {h.total} "
        f"in {s['total']:.1f} s"
    )


def _ratio_text(a, sa, b, sb, marked: bool = False) -> str:
    r = ratio(a, sa, b, sb, marked)
    return format_ratio(r) + (" ≈1" if r is not None and not r.differs_from_one else "")


def _print_ratios(first: tuple, other: tuple) -> None:
    """Per layer, other / first ± its first-order error from both: above 1 the other checkpoint
    is sharper there. An eigenvalue's error is its Lanczos residual."""
    (name_a, a), (name_b, b) = first, other
    theirs = {row.name: row for row in b.rows}
    print(f"{name_b} / {name_a}:")
    print(f"  {'layer':<28} {'top eig':>20}  {'trace':>20}")

    def line(name, ta, sta, tb, stb, ea, ra, eb, rb, marked):
        eig = "-" if ea is None or eb is None else _ratio_text(ea, ra, eb, rb, marked)
        print(f"  {name:<28} {eig:>20}  {_ratio_text(ta, sta, tb, stb):>20}")

    for row in a.rows:
        o = theirs.get(row.name)
        if o is not None:
            unconverged = row.top_converged is False or o.top_converged is False
            line(
                row.name + (" *" if row.is_classifier else ""),
                *(row.trace, row.trace_stderr, o.trace, o.trace_stderr),
                *(row.top_eigenvalue, row.top_residual, o.top_eigenvalue, o.top_residual),
                unconverged,
            )
    wa, wb = a.whole, b.whole
    line(
        "whole network",
        *(wa.trace, wa.trace_stderr, wb.trace, wb.trace_stderr),
        *(wa.top_eigenvalue, wa.top_residual, wb.top_eigenvalue, wb.top_residual),
        not (wa.converged and wb.converged),
    )
    print(
        "  ± one standard error, propagated from both (an eigenvalue's: its residual); "
        "≈1: within noise of 1 (2 se); ? an eigenvalue not converged; - no ratio (the first "
        "value is not clearly above zero)"
    )
    missing = len(b.rows) - sum(row.name in theirs for row in a.rows)
    if missing:
        print(f"  ({missing} layer(s) of the second checkpoint have no counterpart by name)")


def show_interpolation(found: list[Found]) -> None:
    ((_, line, path, _),) = found
    for a, lo, ac in zip(line.axes[0], line.loss, line.accuracy, strict=True):
        print(f"alpha {a:+.3f}  loss {lo:.4f}  accuracy {ac:.4f}")
    print(f"{line.eval_set}; saved {path}")


def show_sharpness(found: list[Found]) -> None:
    ((_, result, path, eval_set),) = found
    for m in result.measures:
        se = (
            f" ± {m.increase_stderr:.2g}, max {m.max_increase:.4g}"
            if m.increase_stderr is not None
            else ""
        )
        print(f"{m.kind:<22} radius {m.radius:g}: loss {m.base_loss:.4f} -> +{m.increase:.4g}{se}")
    print(f"{eval_set}; saved {path}")


def show_track(setup: dict, points: list[dict], path: Path) -> None:
    """A run's checkpoint curvature series: a line per checkpoint, each estimate with its error."""
    print(
        f"{'checkpoint':<12} {'epoch':>5} {'lr':>9} {'lambda_max':>11} {'residual':>9} "
        f"{'threshold':>10} {'trace':>10} {'± se':>8} {'last layer':>10}"
    )
    for p in points:
        last = p.get("last_layer_top")
        print(
            f"{p.get('checkpoint', ''):<12} {p['epoch']:>5g} {p['lr']:>9.3g} "
            f"{p['top_eigenvalue']:>11.5g} {p['top_residual']:>9.2g} {p['threshold']:>10.4g} "
            f"{p['trace']:>10.5g} {p['trace_stderr']:>8.2g} "
            f"{'-' if last is None else format(last, '.5g'):>10}"
        )
    print(
        f"{setup.get('samples')} probe examples (seed {setup.get('seed')}), "
        f"{setup.get('probes')} Hutchinson probes, threshold {setup.get('threshold_rule')}; "
        f"parameters: {setup.get('parameters')}; saved in {path}"
    )
