"""`python -m analysis`: curvature, landscapes and sharpness of checkpoints, cached on disk.

Every result is written as JSON into --out, named by a key over (the checkpoints' bytes, the
directions, the data, the options): asking the same question twice reads the file instead of
computing again. A landscape stopped half-way (Ctrl-C, killed job) continues where it stopped.

Exit codes: 0 success; 1 a part failed or an unexpected error (a bug: one line on stderr, the
traceback with POF_DEBUG=1 or in the part's log); 2 bad input, refused before any work (an option
out of range, a grid too large to compute, an unusable or non-finite checkpoint, unusable
directions, an unknown dataset, an unwritable --out); 3 stopped.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from pathlib import Path

from analysis import cache
from analysis.configs import (
    HessianConfig,
    InterpolationConfig,
    LandscapeConfig,
    LayersConfig,
    ReportConfig,
    SharpnessConfig,
)
from analysis.reports import KINDS, EvalData
from pof import validate as check
from pof.cli import add_data_args, add_model_args, model_source, run_command
from pof.data.names import data_options
from pof.options import add_options, from_args
from pof.progress import Stopped
from pof.validate import ConfigError

EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 2, 3

# the command -> its config; flags of these fields are generated (tests/test_analysis_options.py)
CONFIGS = {
    "hessian": HessianConfig,
    "layers": LayersConfig,
    "landscape": LandscapeConfig,
    "interpolate": InterpolationConfig,
    "sharpness": SharpnessConfig,
    "report": ReportConfig,
    "compare": ReportConfig,
}


# --- progress bars -----------------------------------------------------------------------------


def _bar(quiet: bool):
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


def _hvp_bar(quiet: bool, desc: str):
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


def _eval_data(args, cfg, checkpoint: str) -> EvalData:
    return EvalData(
        checkpoint,
        args.dataset,
        cfg.split,
        cfg.samples,
        args.data_root,
        cfg.device,
        cfg.seed,
        model_source(args),
        data_options(args),
    )


def _options(cfg) -> dict:
    """What a result depends on among the options (the device does not change it)."""
    from dataclasses import asdict

    return {k: v for k, v in asdict(cfg).items() if k != "device"}


def _cached(args, kind: str, key: str, compute, **about):
    """(results, path) for `key` in --out: read back, or computed and stored."""
    path = Path(args.out) / f"{key}.json"
    saved, hit = cache.cached(path, kind, KINDS[kind], compute, key=key, **about)
    if hit:
        print(f"(cached: {path})", file=sys.stderr)
    return saved.results, path


# --- commands ----------------------------------------------------------------------------------


def cmd_hessian(args, cfg: HessianConfig) -> int:
    from analysis.reports import hessian_report, last_layer_report

    data = _eval_data(args, cfg, args.checkpoint)
    key = cache.key("hessian", [args.checkpoint], data=data.spec, options=_options(cfg))

    def compute():
        progress, close = _bar(args.quiet)
        try:
            return {
                args.checkpoint: hessian_report(
                    data.model,
                    data.batches(cfg.hessian_batch),
                    data.eval_set,
                    top_k=cfg.top_k,
                    tol=cfg.tol,
                    trace=cfg.trace,
                    layer_eigenvalues=cfg.per_layer,
                    probes=cfg.probes,
                    density=cfg.density,
                    density_steps=cfg.density_steps,
                    density_runs=cfg.density_runs,
                    seed=cfg.seed,
                    last_layer=last_layer_report(data.model, data.dataset, data.meta, cfg.top_k),
                    split=data.meta["split"],
                    progress=progress,
                )
            }
        finally:
            close()

    found, path = _cached(args, "hessian", key, compute, checkpoint=args.checkpoint)
    (result,) = found.values()
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, **result.to_dict()}, indent=1))
        return EXIT_OK
    _print_hessian(args.checkpoint, result)
    print(f"saved: {path}")
    return EXIT_OK


def _print_hessian(checkpoint: str, r) -> None:
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
                f"{layer.trace:.4g} ± {layer.trace_stderr:.2g}  per param "
                f"{layer.trace_per_param:.3g}{top_l}"
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


def _layers_csv(path: Path, report) -> None:
    import csv
    import io

    from pof.files import write_atomic

    rows = [row.to_dict() for row in report.rows]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(path, text.getvalue())


def _print_layers(checkpoint: str, r) -> None:
    w = r.whole
    print(f"{checkpoint}: {w.parameters} parameters; {r.eval_set}; {r.mode}")
    print(
        f"  {'layer':<28} {'kind':<10} {'params':>9}  {'trace':>10} ± {'se':<8}  "
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
            f"{row.trace_stderr:<8.2g}  {row.trace_per_param:>10.3g}  {top:>10}  "
            f"{100 * row.share_of_trace:>6.1f}%"
        )
    top = f"{w.top_eigenvalue:.4g}" + ("" if w.converged else "?")
    print(
        f"  {'whole network':<28} {'':<10} {w.parameters:>9}  {w.trace:>10.4g} ± "
        f"{w.trace_stderr:<8.2g}  {w.trace_per_param:>10.3g}  {top:>10}  {100.0:>6.1f}%"
    )
    h, s = r.hvp, r.seconds
    print(f"  * classifier; ? not converged to tol {r.tol:g}")
    print(
        f"  Hessian-vector products: {h.trace} for every trace ({r.n_probes} probes, one pass), "
        f"{h.blocks} for the block eigenvalues, {h.whole_top} for the whole network's; {h.total} "
        f"in {s['total']:.1f} s"
    )


def _print_ratios(first: tuple, other: tuple) -> None:
    """Per layer, other / first: above 1 the other checkpoint is sharper there."""

    def ratio(a, b):
        return f"{b / a:.3g}" if a and b is not None else "-"

    (name_a, a), (name_b, b) = first, other
    theirs = {row.name: row for row in b.rows}
    print(f"{name_b} / {name_a}:")
    print(f"  {'layer':<28} {'top eig':>9}  {'trace':>9}")
    for row in a.rows:
        o = theirs.get(row.name)
        if o is not None:
            name = row.name + (" *" if row.is_classifier else "")
            print(
                f"  {name:<28} {ratio(row.top_eigenvalue, o.top_eigenvalue):>9}  "
                f"{ratio(row.trace, o.trace):>9}"
            )
    wa, wb = a.whole, b.whole
    print(
        f"  {'whole network':<28} {ratio(wa.top_eigenvalue, wb.top_eigenvalue):>9}  "
        f"{ratio(wa.trace, wb.trace):>9}"
    )
    missing = len(b.rows) - sum(row.name in theirs for row in a.rows)
    if missing:
        print(f"  ({missing} layer(s) of the second checkpoint have no counterpart by name)")


def _layer_result(args, cfg: LayersConfig, checkpoint: str):
    """One checkpoint's report, from the cache in --out or computed (and cached as JSON + CSV)."""
    from analysis.layers import layer_report

    data = _eval_data(args, cfg, checkpoint)
    key = cache.key("layers", [checkpoint], data=data.spec, options=_options(cfg))

    def compute():
        progress, close = _hvp_bar(args.quiet, Path(checkpoint).name)
        try:
            report = layer_report(
                data.model,
                data.batches(cfg.hessian_batch),
                classifier=data.meta.get("classifier"),
                probes=cfg.probes,
                tol=cfg.tol,
                max_steps=cfg.max_steps,
                seed=cfg.seed,
                block_eigenvalues=not cfg.traces_only,
                progress=progress,
            )
        finally:
            close()
        return {checkpoint: _with_eval_set(report, data.eval_set)}

    found, path = _cached(args, "layers", key, compute, checkpoint=checkpoint)
    (report,) = found.values()
    if not path.with_suffix(".csv").exists():
        _layers_csv(path.with_suffix(".csv"), report)
    return report, path


def _with_eval_set(report, eval_set: str):
    import dataclasses

    return dataclasses.replace(report, eval_set=eval_set)


def cmd_layers(args, cfg: LayersConfig) -> int:
    from pof.models.formats import CheckpointError

    # refuse bad input before the first (minutes-long) report, not after it
    for checkpoint in args.checkpoints:
        if not Path(checkpoint).is_file():
            raise CheckpointError(f"no such checkpoint file: {checkpoint}")
    reports = []
    try:
        for checkpoint in args.checkpoints:
            reports.append((checkpoint, *_layer_result(args, cfg, checkpoint)))
    except Stopped:
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED
    if args.json:
        print(json.dumps([{"checkpoint": c, **r.to_dict()} for c, r, _ in reports], indent=1))
        return EXIT_OK
    for checkpoint, report, path in reports:
        _print_layers(checkpoint, report)
        print(f"  saved: {path} and {path.with_suffix('.csv').name}")
    for checkpoint, report, _ in reports[1:]:
        _print_ratios((reports[0][0], reports[0][1]), (checkpoint, report))
    return EXIT_OK


def _directions(args, cfg: LandscapeConfig, data):
    from analysis.landscape import Directions, difference_direction, random_directions

    model = data.model
    random = (cfg.seed, cfg.normalization, cfg.include_bias_bn, cfg.layers)
    if args.towards:  # axis 1 runs from this checkpoint (0) to the other (1); axis 2 is random
        dirs = difference_direction(model, data.load_other(args.towards))
        if cfg.dims == 2:
            extra = random_directions(model, 1, *random)
            meta = {"kind": "difference + random", "towards": args.towards, "random": extra.meta}
            dirs = Directions(dirs.vectors + extra.vectors, {**meta, "count": 2})
        return dirs
    if args.directions and Path(args.directions).exists():
        dirs = Directions.load(args.directions)
        if len(dirs.vectors) < cfg.dims:
            raise ConfigError(
                f"{args.directions} holds {len(dirs.vectors)} direction(s); --dims {cfg.dims} "
                f"needs more."
            )
        dirs.vectors = dirs.vectors[: cfg.dims]
        dirs.check_fits(model)
        return dirs
    dirs = random_directions(model, cfg.dims, *random)
    if args.directions:
        dirs.save(args.directions)
        print(
            f"directions saved to {args.directions} (seed {cfg.seed}); pass it again to reuse them",
            file=sys.stderr,
        )
    return dirs


def cmd_landscape(args, cfg: LandscapeConfig) -> int:
    from analysis import results
    from analysis.landscape import Landscape, evaluate_grid, grid

    data = _eval_data(args, cfg, args.checkpoint)
    dirs = _directions(args, cfg, data)
    axes = [grid(cfg.range[0], cfg.range[1], cfg.steps)] * cfg.dims
    dir_key = hashlib.sha256(
        b"".join(v.numpy().tobytes() for d in dirs.vectors for v in d.values())
    ).hexdigest()
    models = [(args.checkpoint, data.model)]
    if args.compare:
        models.append((args.compare, data.load_other(args.compare)))
    out = Path(args.out)
    shown = []
    progress, close = _bar(args.quiet)
    try:
        for ckpt, model in models:
            key = cache.key(
                "landscape",
                [ckpt],
                dirs=dir_key,
                axes=axes,
                data=data.spec,
                batch=cfg.batch_size,
            )
            partial_path = out / f"{key}.partial.json"

            def compute(ckpt=ckpt, model=model, partial_path=partial_path):
                saved = results.load(partial_path, "landscape", Landscape, cache.warn)
                partial = saved.results.get(ckpt) if saved else None
                if partial:
                    print(
                        f"continuing {partial.done}/{partial.total} points from {partial_path}",
                        file=sys.stderr,
                    )
                res = evaluate_grid(
                    model,
                    dirs,
                    axes,
                    data.x,
                    data.y,
                    data.eval_set,
                    cfg.batch_size,
                    partial,
                    lambda r: results.save(partial_path, "landscape", {ckpt: r}),
                    progress,
                )
                return {ckpt: res}

            try:
                found, path = _cached(args, "landscape", key, compute, checkpoint=ckpt)
            except (Stopped, KeyboardInterrupt):
                print(
                    f"stopped; rerun the same command to continue from {partial_path}",
                    file=sys.stderr,
                )
                return EXIT_STOPPED
            partial_path.unlink(missing_ok=True)
            shown.append((ckpt, found[ckpt], path))
    finally:
        close()
    for ckpt, res, path in shown:
        import numpy as np

        loss = np.array(res.loss, dtype=float)
        print(
            f"{ckpt}: loss at the origin {res.origin_loss():.4f}, min {np.nanmin(loss):.4f}, max "
            f"{np.nanmax(loss):.4f} over {loss.size} points; {res.eval_set}; saved {path}"
        )
    return EXIT_OK


def cmd_interpolate(args, cfg: InterpolationConfig) -> int:
    from analysis.landscape import grid, interpolate

    data = _eval_data(args, cfg, args.checkpoint_a)
    other = data.load_other(args.checkpoint_b)
    alphas = grid(cfg.range[0], cfg.range[1], cfg.steps)
    files = [args.checkpoint_a, args.checkpoint_b]
    key = cache.key("interpolation", files, alphas=alphas, data=data.spec, batch=cfg.batch_size)

    def compute():
        progress, close = _bar(args.quiet)
        try:
            line = interpolate(
                data.model, other, alphas, data.x, data.y, data.eval_set, cfg.batch_size, progress
            )
        finally:
            close()
        return {f"{args.checkpoint_a} → {args.checkpoint_b}": line}

    found, path = _cached(args, "interpolation", key, compute, checkpoints=files)
    (line,) = found.values()
    for a, lo, ac in zip(line.axes[0], line.loss, line.accuracy, strict=True):
        print(f"alpha {a:+.3f}  loss {lo:.4f}  accuracy {ac:.4f}")
    print(f"{line.eval_set}; saved {path}")
    return EXIT_OK


def cmd_sharpness(args, cfg: SharpnessConfig) -> int:
    from analysis.reports import sharpness_report

    data = _eval_data(args, cfg, args.checkpoint)
    key = cache.key("sharpness", [args.checkpoint], data=data.spec, options=_options(cfg))

    def compute():
        progress, close = _bar(args.quiet)
        try:
            return {
                args.checkpoint: sharpness_report(
                    data.model,
                    data.x,
                    data.y,
                    data.eval_set,
                    rho=cfg.rho,
                    steps=cfg.steps,
                    sigma=cfg.sigma,
                    noise_samples=cfg.noise_samples,
                    seed=cfg.seed,
                    batch_size=cfg.batch_size,
                    progress=progress,
                )
            }
        finally:
            close()

    found, path = _cached(args, "sharpness", key, compute, checkpoint=args.checkpoint)
    (result,) = found.values()
    for m in result.measures:
        se = (
            f" ± {m.increase_stderr:.2g}, max {m.max_increase:.4g}"
            if m.increase_stderr is not None
            else ""
        )
        print(f"{m.kind:<22} radius {m.radius:g}: loss {m.base_loss:.4f} -> +{m.increase:.4g}{se}")
    print(f"{data.eval_set}; saved {path}")
    return EXIT_OK


def _run_parts(compute_part, parts, quiet: bool) -> int:
    for part in parts:
        progress, close = _bar(quiet)
        try:
            job = compute_part(part, progress)
        finally:
            close()
        state = job.status()["state"]
        print(f"{part}: {state}, result in {job.path / 'result.json'}")
        if state != "done":
            return EXIT_STOPPED
    return EXIT_OK


def cmd_report(args, cfg: ReportConfig) -> int:
    from analysis.compare import report

    return _run_parts(
        lambda part, progress: report(args.run, cfg, part, progress), args.part, args.quiet
    )


def cmd_compare(args, cfg: ReportConfig) -> int:
    from analysis.compare import PAIR_ONLY, Subject, comparison_dir, compute, labels_for
    from pof.models.metadata import dataset_of

    if len(args.checkpoints) > 2:
        raise ConfigError("compare takes one or two checkpoints.")
    if args.label and len(args.label) != len(args.checkpoints):
        raise ConfigError(f"give one --label per checkpoint ({len(args.checkpoints)}), or none.")
    subject = Subject(
        labels_for(args.checkpoints, args.label),
        dataset_of(args.checkpoints[0], args.dataset),
        data_options(args),
        model_source(args),
    )
    out = Path(args.out) if args.out else comparison_dir("results", subject, cfg)
    parts = [p for p in args.part if p not in PAIR_ONLY or len(args.checkpoints) == 2]
    return _run_parts(
        lambda part, progress: compute(out, subject, cfg, part, progress), parts, args.quiet
    )


COMMANDS = {
    "hessian": cmd_hessian,
    "layers": cmd_layers,
    "landscape": cmd_landscape,
    "interpolate": cmd_interpolate,
    "sharpness": cmd_sharpness,
    "report": cmd_report,
    "compare": cmd_compare,
}


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from analysis.compare import PARTS

    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    def command(name: str, positional: list[tuple], **kw) -> argparse.ArgumentParser:
        p = sub.add_parser(name, formatter_class=fmt, **kw)
        for args, more in positional:
            p.add_argument(*args, **more)
        if name != "report":  # a run's checkpoints say what they are and what they were trained on
            add_data_args(p, required=False)  # --dataset (default: the checkpoint's) ...
            add_model_args(p)
        add_options(p, CONFIGS[name])
        if name not in ("report", "compare"):
            p.add_argument("--out", default="results", help="folder for results (and the cache)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        return p

    def range_flag(p, cls):
        """--range LO HI: two numbers (a hand-written flag of the config's `range` field)."""
        (f,) = [f for f in dataclasses.fields(cls) if f.name == "range"]
        p.add_argument(
            "--range",
            type=float,
            nargs=2,
            default=list(f.default),
            metavar=("LO", "HI"),
            help=f.metadata["help"],
        )

    one = [(("checkpoint",), {})]
    p = command("hessian", one, help="top eigenvalues, trace, density, per layer; exact last layer")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")

    p = command(
        "layers",
        [(("checkpoints",), {"nargs": "+", "metavar": "CKPT"})],
        help="per-layer sharpness: each layer's Hessian block trace and top eigenvalue",
        description="For every parameterized layer (bias folded in, each normalization layer its "
        "own block): its Hessian block's trace ± standard error, trace per parameter, top "
        "eigenvalue with its residual and share of the whole trace; the whole network for "
        "reference; the classifier marked *. One Hutchinson pass gives every trace; each block's "
        "eigenvalue costs one full-network Hessian-vector product per Lanczos step. Cached as "
        "JSON (and CSV) in --out; with two or more checkpoints, the ratios to the first are "
        "printed per layer.",
    )
    p.add_argument(
        "--json", action="store_true", help="print the reports as a JSON list (one per checkpoint)"
    )

    p = command("landscape", one, help="1-D or 2-D loss/accuracy slices along saved directions")
    range_flag(p, LandscapeConfig)
    p.add_argument(
        "--compare", default=None, help="a second checkpoint, evaluated along the same directions"
    )
    p.add_argument(
        "--directions",
        default=None,
        help="directions file (safetensors, whatever its name): read if it exists, else made and "
        "saved there",
    )
    p.add_argument(
        "--towards",
        default=None,
        metavar="CKPT",
        help="first axis: the direction from the checkpoint to CKPT over parameters (0 = "
        "checkpoint, 1 = CKPT's parameters with the checkpoint's BN statistics; `interpolate` "
        "moves those too)",
    )

    p = command(
        "interpolate",
        [(("checkpoint_a",), {}), (("checkpoint_b",), {})],
        help="loss/accuracy on the line between two checkpoints",
    )
    range_flag(p, InterpolationConfig)

    command("sharpness", one, help="worst-case (plain, adaptive) and average-case sharpness")

    p = command(
        "report",
        [(("run",), {"help": "a finished post-training run folder"})],
        help="before vs after for a post-training run: per layer, Hessians, landscapes, "
        "interpolation",
        description="Everything the app's Compare page shows, for RUN/checkpoints/initial and "
        "final; each part is written to RUN/analysis/PART/result.json (a run folder with its own "
        "status).",
    )
    p.add_argument(
        "--part", nargs="+", choices=PARTS, default=list(PARTS), help="which analyses to compute"
    )

    p = command(
        "compare",
        [
            (
                ("checkpoints",),
                {"nargs": "+", "metavar": "CHECKPOINT", "help": "one or two checkpoints"},
            )
        ],
        help="the same analyses for any one or two checkpoints (yours included)",
        description="Everything the app's Inspect page shows, for one checkpoint or two (the "
        "first draws the landscape directions; the interpolation runs from the first to the "
        "second); each part is written to OUT/PART/result.json.",
    )
    p.add_argument(
        "--part", nargs="+", choices=PARTS, default=list(PARTS), help="which analyses to compute"
    )
    p.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="NAME",
        help="what to call each checkpoint in the results, in order (default: its file name)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="folder for the parts (default: results/compare/KEY, KEY from the checkpoints' "
        "content, the data and the options)",
    )
    return parser


def config_of(args):
    """The command's config from its flags; it checks its own values (ConfigError)."""
    cls = CONFIGS[args.command]
    hand = {"range": tuple(args.range)} if hasattr(args, "range") else {}
    return from_args(cls, args, **hand)


def check_options(args):
    """Every option of the command, before a checkpoint or dataset is read (ConfigError if one
    cannot work); returns the command's config."""
    cfg = config_of(args)
    out = getattr(args, "out", None)
    if out is not None:
        check.output_dir("--out", out)
    return cfg


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # argparse refuses unknown options itself, with exit 2

    def handler(a):
        return COMMANDS[a.command](a, check_options(a))

    run_dir = args.run if args.command == "report" else None
    parts = getattr(args, "part", None) or []
    if len(parts) == 1 and (args.command == "report" or getattr(args, "out", None)):
        # one part: its own folder, the one the app queued (its log gets a traceback, its status
        # a refusal)
        run_dir = (
            Path(args.run) / "analysis" / parts[0]
            if args.command == "report"
            else Path(args.out) / parts[0]
        )
    return run_command(handler, args, run_dir)
