"""`python -m analysis`: curvature, landscapes and sharpness of checkpoints, cached on disk.

Every result is written as JSON into --out, named by a key over (checkpoint hashes, directions,
options, data subset): asking the same question twice reads the file instead of computing again.
A landscape stopped half-way (Ctrl-C, killed job) continues where it stopped.

Exit codes: 0 success; 1 a part failed or an unexpected error (a bug: one line on stderr, the
traceback with POF_DEBUG=1 or in the part's log); 2 bad input, refused before any work (an option
out of range, a grid too large to compute, an unusable or non-finite checkpoint, unusable
directions, an unknown dataset, an unwritable --out); 3 stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from pof import validate as check
from pof.cli import _add_data_args, add_model_args, model_source, run_command
from pof.data import data_options
from pof.validate import ConfigError

EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 2, 3


# --- shared plumbing ---------------------------------------------------------------------------


def _bar(quiet: bool):
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bars = {}

    def progress(done: int, total: int, label: str) -> None:
        bar = bars.get(label)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = bars[label] = tqdm(total=total, desc=label, dynamic_ncols=True, file=sys.stderr)
        bar.update(done - bar.n)

    return progress, lambda: [b.close() for b in bars.values()]


class EvalData:
    """A checkpoint's model and a fixed, stated evaluation tensor (split, first N of a seeded order)."""

    def __init__(
        self,
        checkpoint: str,
        dataset: str | None,
        split: str,
        samples: int | None,
        data_root=None,
        device: str = "auto",
        seed: int = 0,
        source=None,
        data_options: dict | None = None,
    ):
        from pof.checkpoints import CheckpointError, data_for, file_sha256, load_checkpoint
        from pof.train import pick_device

        from .landscape import eval_tensors

        self.dataset = data_for(checkpoint, dataset, data_root, data_options)
        self.device = pick_device(device)
        self.source = source
        self.model, self.meta = load_checkpoint(checkpoint, dataset=self.dataset, source=source)
        for warning in self.meta["warnings"]:
            print(f"warning: {warning}", file=sys.stderr)
        if self.meta["nonfinite"]:
            raise CheckpointError(
                f"{checkpoint} holds NaN or infinite weights ({', '.join(self.meta['nonfinite'][:3])}); "
                f"its curvature and landscape are meaningless. Analyse a checkpoint of an earlier "
                f"epoch."
            )
        self.model.to(self.device)
        self.sha = file_sha256(checkpoint)
        self.x, self.y, n, self.eval_set = eval_tensors(
            self.dataset, self.meta["mean"], self.meta["std"], split, samples, seed, self.device
        )
        self.spec = {"dataset": self.dataset.name, "split": split, "samples": n, "seed": seed}

    def load_other(self, checkpoint: str):
        """A second checkpoint on the same data and device, read with the same --arch options."""
        from pof.checkpoints import load_checkpoint

        model, _ = load_checkpoint(checkpoint, dataset=self.dataset, source=self.source)
        return model.to(self.device)

    def batches(self, batch_size: int):
        return [
            (self.x[i : i + batch_size], self.y[i : i + batch_size])
            for i in range(0, len(self.x), batch_size)
        ]


def _key(kind: str, **parts) -> str:
    return (
        kind
        + "-"
        + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
    )


def _read_json(path: Path):
    """A cached or partial result, or None when absent or unreadable (a torn or edited file is recomputed)."""
    try:
        obj = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        print(f"warning: ignoring unreadable {path} ({e}); computing it again", file=sys.stderr)
        return None
    return obj if isinstance(obj, dict) else None


def _cached(out: Path, key: str):
    path = out / f"{key}.json"
    return _read_json(path), path


def _write(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1, allow_nan=True))
    tmp.replace(path)


# --- commands ----------------------------------------------------------------------------------


def cmd_hessian(args) -> int:
    from pof.data import Batches

    from .hessian import (
        HessianOperator,
        hutchinson_trace,
        per_layer_top_eigenvalues,
        spectral_density,
        top_eigenvalues,
    )
    from .lastlayer import features_and_probs, last_layer_hessian

    data = EvalData(
        args.checkpoint,
        args.dataset,
        args.split,
        args.samples,
        args.data_root,
        args.device,
        args.seed,
        model_source(args),
        data_options(args),
    )
    opts = {
        k: getattr(args, k)
        for k in (
            "top_k",
            "trace",
            "density",
            "per_layer",
            "probes",
            "density_steps",
            "density_runs",
            "tol",
            "seed",
        )
    }
    opts["batch_size"] = args.batch_size or 1000
    key = _key("hessian", sha=data.sha, data=data.spec, **opts)
    out = Path(args.out)
    result, path = _cached(out, key)
    if result is None:
        progress, close = _bar(args.quiet)
        try:
            ds = data.dataset
            train = Batches(
                ds.x_train,
                ds.y_train,
                data.meta["mean"],
                data.meta["std"],
                2048,
                data.device,
                shuffle=False,
            )
            result = {
                "checkpoint": args.checkpoint,
                "sha256": data.sha,
                "eval_set": data.eval_set,
                "options": opts,
                "mode": "eval (BN running statistics)",
                "split": data.meta["split"],
            }
            if data.meta["classifier"]:  # the closed form needs a linear last layer
                from pof.models import split_model

                split = split_model(data.model, classifier=data.meta["classifier"])
                ll = last_layer_hessian(
                    *features_and_probs(data.model, train, split), top_k=args.top_k
                )
                result["last_layer"] = {
                    **ll.to_dict(),
                    "eval_set": f"{ds.name} train split, all {len(ds.x_train)} images (exact)",
                }
            op = HessianOperator(data.model, data.batches(args.batch_size or 1000))
            result["parameters"] = op.dim
            result["top"] = top_eigenvalues(
                op, args.top_k, tol=args.tol, seed=args.seed, progress=progress
            ).to_dict()
            if args.trace or args.per_layer:
                tr = hutchinson_trace(
                    op, args.probes, seed=args.seed, per_layer=args.per_layer, progress=progress
                )
                if args.per_layer:
                    per_layer_top_eigenvalues(op, tr.layers, seed=args.seed, progress=progress)
                result["trace"] = tr.to_dict()
            if args.density:
                result["density"] = spectral_density(
                    op, args.density_steps, args.density_runs, seed=args.seed, progress=progress
                ).to_dict()
            op.close()
            result["hessian_vector_products"] = op.n_hvp
        finally:
            close()
        _write(path, result)
    else:
        print(f"(cached: {path})", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
        return EXIT_OK
    top = result["top"]
    print(f"{args.checkpoint}: {result['parameters']} parameters; {result['eval_set']}")
    print(
        "top eigenvalues: "
        + ", ".join(
            f"{v:.6g}{'' if c else ' (not converged)'}"
            for v, c in zip(top["eigenvalues"], top["converged"])
        )
        + f"  [{top['iterations']} Lanczos steps, tol {top['tol']:g}]"
    )
    if "trace" in result:
        t = result["trace"]
        print(f"trace: {t['trace']:.6g} ± {t['stderr']:.2g} (Hutchinson, {t['n_probes']} probes)")
        for layer in t["layers"]:
            top_l = (
                f"  top {layer['top_eigenvalue']:.4g}"
                if layer.get("top_eigenvalue") is not None
                else ""
            )
            print(
                f"  {layer['name']:<28} {layer['kind']:<10} {layer['n_params']:>9} params  trace {layer['trace']:.4g}"
                f" ± {layer['trace_stderr']:.2g}  per param {layer['trace_per_param']:.3g}{top_l}"
            )
    ll = result.get("last_layer")
    if ll is None:
        print(f"last layer: not computed ({result['split']})")
    else:
        print(
            f"last layer (exact, {ll['n_samples']} samples, {ll['method']}): top "
            + ", ".join(f"{v:.6g}" for v in ll["top_eigenvalues"])
            + f"; trace {ll['trace']:.6g}"
        )
    if "density" in result:
        d = result["density"]
        print(
            f"density: {d['steps']} Lanczos steps x {len(d['nodes'])} runs, support [{min(d['grid']):.4g}, {max(d['grid']):.4g}]"
        )
    print(f"saved: {path}")
    return EXIT_OK


def _layers_progress(quiet: bool, desc: str):
    """One bar for the whole report, counted in Hessian-vector products: its total shrinks when a
    Lanczos run converges early, so the time left tqdm shows is an upper bound that tightens."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = tqdm(total=1, desc=desc, unit="hvp", dynamic_ncols=True, file=sys.stderr)

    def progress(done: int, total: int, label: str) -> None:
        bar.total = total
        bar.set_postfix_str(label, refresh=False)
        bar.update(done - bar.n)

    return progress, bar.close


def _layers_csv(path: Path, rows: list[dict]) -> None:
    import csv

    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _print_layers(result: dict) -> None:
    w = result["whole"]
    print(
        f"{result['checkpoint']}: {w['parameters']} parameters; {result['eval_set']}; {result['mode']}"
    )
    print(
        f"  {'layer':<28} {'kind':<10} {'params':>9}  {'trace':>10} ± {'se':<8}  {'per param':>10}  {'top eig':>10}  {'share':>7}"
    )
    for r in result["rows"]:
        top = (
            "-"
            if r["top_eigenvalue"] is None
            else f"{r['top_eigenvalue']:.4g}" + ("" if r["top_converged"] else "?")
        )
        name = r["name"] + (" *" if r["is_classifier"] else "")
        print(
            f"  {name:<28} {r['kind']:<10} {r['n_params']:>9}  {r['trace']:>10.4g} ± {r['trace_stderr']:<8.2g}"
            f"  {r['trace_per_param']:>10.3g}  {top:>10}  {100 * r['share_of_trace']:>6.1f}%"
        )
    top = f"{w['top_eigenvalue']:.4g}" + ("" if w["converged"] else "?")
    print(
        f"  {'whole network':<28} {'':<10} {w['parameters']:>9}  {w['trace']:>10.4g} ± {w['trace_stderr']:<8.2g}"
        f"  {w['trace_per_param']:>10.3g}  {top:>10}  {100.0:>6.1f}%"
    )
    h, s = result["hvp"], result["seconds"]
    print(f"  * classifier; ? not converged to tol {result['tol']:g}")
    print(
        f"  Hessian-vector products: {h['trace']} for every trace ({result['n_probes']} probes, one pass), "
        f"{h['blocks']} for the block eigenvalues, {h['whole_top']} for the whole network's; {h['total']} in "
        f"{s['total']:.1f} s"
    )


def _print_ratios(first: dict, other: dict) -> None:
    """Per layer, other / first: above 1 the other checkpoint is sharper there."""

    def ratio(a, b):
        return f"{b / a:.3g}" if a and b is not None else "-"

    theirs = {r["name"]: r for r in other["rows"]}
    print(f"{other['checkpoint']} / {first['checkpoint']}:")
    print(f"  {'layer':<28} {'top eig':>9}  {'trace':>9}")
    for r in first["rows"]:
        o = theirs.get(r["name"])
        if o is not None:
            name = r["name"] + (" *" if r["is_classifier"] else "")
            print(
                f"  {name:<28} {ratio(r['top_eigenvalue'], o['top_eigenvalue']):>9}  {ratio(r['trace'], o['trace']):>9}"
            )
    a, b = first["whole"], other["whole"]
    print(
        f"  {'whole network':<28} {ratio(a['top_eigenvalue'], b['top_eigenvalue']):>9}  {ratio(a['trace'], b['trace']):>9}"
    )
    missing = len(other["rows"]) - sum(r["name"] in theirs for r in first["rows"])
    if missing:
        print(f"  ({missing} layer(s) of the second checkpoint have no counterpart by name)")


def _layer_result(args, checkpoint: str) -> tuple[dict, Path]:
    """One checkpoint's report, from the cache in --out or computed (and then cached as JSON + CSV)."""
    from .layers import SCHEMA, layer_report

    data = EvalData(
        checkpoint,
        args.dataset,
        args.split,
        args.samples,
        args.data_root,
        args.device,
        args.seed,
        model_source(args),
        data_options(args),
    )
    opts = {k: getattr(args, k) for k in ("probes", "tol", "max_steps", "seed", "traces_only")}
    opts.update(batch_size=args.batch_size or 1000, schema=SCHEMA)
    path = Path(args.out) / f"{_key('layers', sha=data.sha, data=data.spec, **opts)}.json"
    result = _read_json(path)
    if result is not None:
        print(f"(cached: {path})", file=sys.stderr)
    else:
        progress, close = _layers_progress(args.quiet, Path(checkpoint).name)
        try:
            report = layer_report(
                data.model,
                data.batches(opts["batch_size"]),
                classifier=data.meta.get("classifier"),
                probes=args.probes,
                tol=args.tol,
                max_steps=args.max_steps,
                seed=args.seed,
                block_eigenvalues=not args.traces_only,
                progress=progress,
            )
        finally:
            close()
        result = {
            "checkpoint": checkpoint,
            "sha256": data.sha,
            "eval_set": data.eval_set,
            "options": opts,
            **report.to_dict(),
        }
        _write(path, result)
    if not path.with_suffix(".csv").exists():
        _layers_csv(path.with_suffix(".csv"), result["rows"])
    return result, path


def cmd_layers(args) -> int:
    from pof.checkpoints import CheckpointError

    from .hessian import Stopped

    # refuse bad input before the first (minutes-long) report, not after it
    for checkpoint in args.checkpoints:
        if not Path(checkpoint).is_file():
            raise CheckpointError(f"no such checkpoint file: {checkpoint}")
    results = []
    try:
        for checkpoint in args.checkpoints:
            results.append(_layer_result(args, checkpoint))
    except Stopped:
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED
    if args.json:
        print(json.dumps([r for r, _ in results], indent=1))
        return EXIT_OK
    for result, path in results:
        _print_layers(result)
        print(f"  saved: {path} and {path.with_suffix('.csv').name}")
    for other, _ in results[1:]:
        _print_ratios(results[0][0], other)
    return EXIT_OK


def _directions(args, data):
    from .landscape import Directions, difference_direction, random_directions

    model = data.model
    if args.towards:  # axis 1 runs from this checkpoint (0) to the other (1); axis 2 is random
        dirs = difference_direction(model, data.load_other(args.towards))
        if args.dims == 2:
            extra = random_directions(
                model, 1, args.seed, args.normalization, args.include_bias_bn, args.layers
            )
            dirs = Directions(
                dirs.vectors + extra.vectors,
                {
                    "kind": "difference + random",
                    "towards": args.towards,
                    "random": extra.meta,
                    "count": 2,
                },
            )
        return dirs
    if args.directions and Path(args.directions).exists():
        dirs = Directions.load(args.directions)
        if len(dirs.vectors) < args.dims:
            raise ConfigError(
                f"{args.directions} holds {len(dirs.vectors)} direction(s); --dims {args.dims} needs more."
            )
        dirs.vectors = dirs.vectors[: args.dims]
        dirs.check_fits(model)
        return dirs
    dirs = random_directions(
        model, args.dims, args.seed, args.normalization, args.include_bias_bn, args.layers
    )
    if args.directions:
        dirs.save(args.directions)
        print(
            f"directions saved to {args.directions} (seed {args.seed}); pass it again to reuse them",
            file=sys.stderr,
        )
    return dirs


def cmd_landscape(args) -> int:
    from pof.checkpoints import file_sha256

    from .hessian import Stopped
    from .landscape import Landscape, evaluate_grid, grid

    data = EvalData(
        args.checkpoint,
        args.dataset,
        args.split,
        args.samples,
        args.data_root,
        args.device,
        args.seed,
        model_source(args),
        data_options(args),
    )
    dirs = _directions(args, data)
    axes = [grid(args.range[0], args.range[1], args.steps)] * args.dims
    dir_key = hashlib.sha256(
        b"".join(v.numpy().tobytes() for d in dirs.vectors for v in d.values())
    ).hexdigest()
    out = Path(args.out)
    models = [(args.checkpoint, data.model, data.sha)]
    if args.compare:
        models.append((args.compare, data.load_other(args.compare), file_sha256(args.compare)))
    results = {}
    progress, close = _bar(args.quiet)
    try:
        for ckpt, model, sha in models:
            key = _key("landscape", sha=sha, dirs=dir_key, axes=axes, data=data.spec)
            cached, path = _cached(out, key)
            if cached is None:
                partial_path = out / f"{key}.partial.json"
                saved = _read_json(partial_path)
                try:
                    partial = Landscape(**saved) if saved else None
                except TypeError:
                    partial = None
                if partial:
                    print(
                        f"continuing {partial.done}/{partial.total} points from {partial_path}",
                        file=sys.stderr,
                    )
                try:
                    res = evaluate_grid(
                        model,
                        dirs,
                        axes,
                        data.x,
                        data.y,
                        data.eval_set,
                        args.batch_size,
                        partial,
                        lambda r: _write(partial_path, r.to_dict()),
                        progress,
                    )
                except (Stopped, KeyboardInterrupt):
                    print(
                        f"stopped; rerun the same command to continue from {partial_path}",
                        file=sys.stderr,
                    )
                    return EXIT_STOPPED
                cached = {"checkpoint": ckpt, "sha256": sha, **res.to_dict()}
                _write(path, cached)
                partial_path.unlink(missing_ok=True)
            else:
                print(f"(cached: {path})", file=sys.stderr)
            results[ckpt] = (cached, path)
    finally:
        close()
    for ckpt, (res, path) in results.items():
        import numpy as np

        loss = np.array(res["loss"])
        i0 = tuple(len(a) // 2 if 0.0 not in a else a.index(0.0) for a in res["axes"])
        print(
            f"{ckpt}: loss at the origin {loss[i0]:.4f}, min {np.nanmin(loss):.4f}, max {np.nanmax(loss):.4f} "
            f"over {loss.size} points; {res['eval_set']}; saved {path}"
        )
    return EXIT_OK


def cmd_interpolate(args) -> int:
    from pof.checkpoints import file_sha256

    from .landscape import grid, interpolate

    data = EvalData(
        args.checkpoint_a,
        args.dataset,
        args.split,
        args.samples,
        args.data_root,
        args.device,
        args.seed,
        model_source(args),
        data_options(args),
    )
    other = data.load_other(args.checkpoint_b)
    alphas = grid(args.range[0], args.range[1], args.steps)
    key = _key(
        "interpolate", a=data.sha, b=file_sha256(args.checkpoint_b), alphas=alphas, data=data.spec
    )
    result, path = _cached(Path(args.out), key)
    if result is None:
        progress, close = _bar(args.quiet)
        try:
            res = interpolate(
                data.model, other, alphas, data.x, data.y, data.eval_set, args.batch_size, progress
            )
        finally:
            close()
        result = {
            "checkpoint_a": args.checkpoint_a,
            "checkpoint_b": args.checkpoint_b,
            **res.to_dict(),
        }
        _write(path, result)
    for a, lo, ac in zip(result["axes"][0], result["loss"], result["accuracy"]):
        print(f"alpha {a:+.3f}  loss {lo:.4f}  accuracy {ac:.4f}")
    print(f"{result['eval_set']}; saved {path}")
    return EXIT_OK


def cmd_sharpness(args) -> int:
    from .sharpness import average_case_sharpness, worst_case_sharpness

    data = EvalData(
        args.checkpoint,
        args.dataset,
        args.split,
        args.samples,
        args.data_root,
        args.device,
        args.seed,
        model_source(args),
        data_options(args),
    )
    opts = {k: getattr(args, k) for k in ("rho", "steps", "sigma", "noise_samples", "seed")}
    key = _key("sharpness", sha=data.sha, data=data.spec, **opts)
    result, path = _cached(Path(args.out), key)
    if result is None:
        progress, close = _bar(args.quiet)
        kw = dict(eval_set=data.eval_set, batch_size=args.batch_size, progress=progress)
        try:
            result = {
                "checkpoint": args.checkpoint,
                "measures": [
                    worst_case_sharpness(
                        data.model, data.x, data.y, args.rho, args.steps, **kw
                    ).to_dict(),
                    worst_case_sharpness(
                        data.model, data.x, data.y, args.rho, args.steps, adaptive=True, **kw
                    ).to_dict(),
                    average_case_sharpness(
                        data.model, data.x, data.y, args.sigma, args.noise_samples, args.seed, **kw
                    ).to_dict(),
                ],
            }
        finally:
            close()
        _write(path, result)
    for m in result["measures"]:
        se = (
            f" ± {m['increase_stderr']:.2g}, max {m['max_increase']:.4g}"
            if m["increase_stderr"] is not None
            else ""
        )
        print(
            f"{m['kind']:<22} radius {m['radius']:g}: loss {m['base_loss']:.4f} -> +{m['increase']:.4g}{se}"
        )
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


def _report_config(args):
    from dataclasses import fields

    from .report import ReportConfig

    return ReportConfig(**{f.name: getattr(args, f.name) for f in fields(ReportConfig)})


def cmd_report(args) -> int:
    from .report import report

    cfg = _report_config(args)
    return _run_parts(
        lambda part, progress: report(args.run, cfg, part, progress), args.part, args.quiet
    )


def cmd_compare(args) -> int:
    from pof.checkpoints import dataset_of
    from pof.data import data_options

    from .report import PAIR_ONLY, Subject, comparison_dir, compute, labels_for

    if len(args.checkpoints) > 2:
        raise ConfigError("compare takes one or two checkpoints.")
    cfg = _report_config(args)
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


# --- parser ------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.ArgumentDefaultsHelpFormatter

    def common(p, split="train"):
        _add_data_args(
            p, required=False
        )  # --dataset (default: the one named in the checkpoint), --data-root ...
        p.add_argument(
            "--split", choices=["train", "test"], default=split, help="which split to evaluate on"
        )
        p.add_argument(
            "--samples",
            type=int,
            default=None,
            help="use this many images (a seeded subset; default all)",
        )
        p.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help="evaluation batch size (default: the largest that fits, found by halving; hessian: 1000)",
        )
        p.add_argument(
            "--seed", type=int, default=0, help="seed for subsets, probes and directions"
        )
        p.add_argument("--device", default="auto")
        p.add_argument("--out", default="results", help="folder for results (and the cache)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        add_model_args(p)

    p = sub.add_parser(
        "hessian",
        help="top eigenvalues, trace, density, per layer; exact last layer",
        formatter_class=fmt,
    )
    p.add_argument("checkpoint")
    common(p)
    p.set_defaults(samples=1000)
    p.add_argument("--top-k", type=int, default=1, help="how many of the largest eigenvalues")
    p.add_argument("--tol", type=float, default=1e-4, help="relative residual for the eigenvalues")
    p.add_argument("--trace", action="store_true", help="Hutchinson trace with its standard error")
    p.add_argument("--probes", type=int, default=100, help="Rademacher probes for the trace")
    p.add_argument(
        "--per-layer", action="store_true", help="each layer's block trace and top eigenvalue"
    )
    p.add_argument(
        "--density", action="store_true", help="spectral density (stochastic Lanczos quadrature)"
    )
    p.add_argument("--density-steps", type=int, default=80)
    p.add_argument("--density-runs", type=int, default=1)
    p.add_argument("--json", action="store_true", help="print the whole result as JSON")

    from .layers import MAX_STEPS, PROBES, TOL

    p = sub.add_parser(
        "layers",
        help="per-layer sharpness: each layer's Hessian block trace and top eigenvalue",
        description="For every parameterized layer (bias folded in, each normalization layer its own "
        "block): its Hessian block's trace ± standard error, trace per parameter, top "
        "eigenvalue with its residual and share of the whole trace; the whole network for "
        "reference; the classifier marked *. One Hutchinson pass gives every trace; each "
        "block's eigenvalue costs one full-network Hessian-vector product per Lanczos step. "
        "Cached as JSON (and CSV) in --out; with two or more checkpoints, the ratios to the "
        "first are printed per layer.",
        formatter_class=fmt,
    )
    p.add_argument("checkpoints", nargs="+", metavar="CKPT")
    common(p)
    p.set_defaults(samples=1000)
    p.add_argument(
        "--probes", type=int, default=PROBES, help="Rademacher probes of the one trace pass"
    )
    p.add_argument(
        "--tol", type=float, default=TOL, help="relative Ritz residual that stops each Lanczos run"
    )
    p.add_argument(
        "--traces-only",
        action="store_true",
        help="leave out the blocks' top eigenvalues: every layer's trace for --probes products in all "
        "(for large models, where each block's eigenvalue costs a few full-network products)",
    )
    p.add_argument(
        "--max-steps",
        type=int,
        default=MAX_STEPS,
        help="at most this many Lanczos steps per eigenvalue",
    )
    p.add_argument(
        "--json", action="store_true", help="print the reports as a JSON list (one per checkpoint)"
    )

    p = sub.add_parser(
        "landscape",
        help="1-D or 2-D loss/accuracy slices along saved directions",
        formatter_class=fmt,
    )
    p.add_argument("checkpoint")
    common(p, split="test")
    p.set_defaults(samples=2000)
    p.add_argument(
        "--compare", default=None, help="a second checkpoint, evaluated along the same directions"
    )
    p.add_argument("--dims", type=int, choices=[1, 2], default=1)
    p.add_argument("--range", type=float, nargs=2, default=[-1.0, 1.0], metavar=("LO", "HI"))
    p.add_argument("--steps", type=int, default=41, help="points per axis")
    p.add_argument(
        "--directions",
        default=None,
        help="directions file (safetensors, whatever its name): read if it exists, else made and saved there",
    )
    p.add_argument("--normalization", choices=["filter", "layer", "none"], default="filter")
    p.add_argument(
        "--include-bias-bn", action="store_true", help="move biases and BN parameters too"
    )
    p.add_argument(
        "--layers",
        nargs="+",
        default=None,
        help="only these parameter-name prefixes move, e.g. classifier",
    )
    p.add_argument(
        "--towards",
        default=None,
        metavar="CKPT",
        help="first axis: the direction from the checkpoint to CKPT over parameters (0 = checkpoint, "
        "1 = CKPT's parameters with the checkpoint's BN statistics; `interpolate` moves those too)",
    )

    p = sub.add_parser(
        "interpolate", help="loss/accuracy on the line between two checkpoints", formatter_class=fmt
    )
    p.add_argument("checkpoint_a")
    p.add_argument("checkpoint_b")
    common(p, split="test")
    p.add_argument("--range", type=float, nargs=2, default=[-0.5, 1.5], metavar=("LO", "HI"))
    p.add_argument("--steps", type=int, default=41)

    p = sub.add_parser(
        "sharpness",
        help="worst-case (plain, adaptive) and average-case sharpness",
        formatter_class=fmt,
    )
    p.add_argument("checkpoint")
    common(p)
    p.set_defaults(samples=2000)
    p.add_argument(
        "--rho",
        type=float,
        default=0.05,
        help="L2 radius of the worst case (adaptive: of |w|-scaled)",
    )
    p.add_argument("--steps", type=int, default=5, help="projected-gradient ascent steps")
    p.add_argument(
        "--sigma", type=float, default=0.01, help="standard deviation of the Gaussian weight noise"
    )
    p.add_argument("--noise-samples", type=int, default=20)
    p = sub.add_parser(
        "report",
        help="before vs after for a post-training run: per layer, Hessians, landscapes, "
        "interpolation",
        description="Everything the app's Compare page shows, for RUN/checkpoints/initial and final; "
        "each part is written to RUN/analysis/PART/result.json (a run folder with its "
        "own status).",
        formatter_class=fmt,
    )
    p.add_argument("run", help="a finished post-training run folder")
    _report_options(p)

    p = sub.add_parser(
        "compare",
        help="the same analyses for any one or two checkpoints (yours included)",
        description="Everything the app's Inspect page shows, for one checkpoint or two (the first "
        "draws the landscape directions; the interpolation runs from the first to the "
        "second); each part is written to OUT/PART/result.json.",
        formatter_class=fmt,
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT", help="one or two checkpoints")
    p.add_argument(
        "--label",
        action="append",
        default=None,
        metavar="NAME",
        help="what to call each checkpoint in the results, in order (default: its file name)",
    )
    _add_data_args(p, required=False)
    add_model_args(p)
    p.add_argument(
        "--out",
        default=None,
        help="folder for the parts (default: results/compare/KEY, KEY from the checkpoints' content, the "
        "data and the options)",
    )
    _report_options(p)
    return parser


def _report_options(p) -> None:
    from .report import PARTS, ReportConfig

    r = ReportConfig()
    p.add_argument(
        "--part", nargs="+", choices=PARTS, default=list(PARTS), help="which analyses to compute"
    )
    p.add_argument(
        "--samples",
        type=int,
        default=r.samples,
        help="training images for the whole-network Hessian and the per-layer table",
    )
    p.add_argument("--top-k", type=int, default=r.top_k)
    p.add_argument("--probes", type=int, default=r.probes, help="Hutchinson probes")
    p.add_argument("--density-steps", type=int, default=r.density_steps)
    p.add_argument(
        "--eval-samples", type=int, default=r.eval_samples, help="test images for the landscapes"
    )
    p.add_argument("--steps-1d", type=int, default=r.steps_1d)
    p.add_argument("--steps-2d", type=int, default=r.steps_2d)
    p.add_argument(
        "--span", type=float, default=r.span, help="landscape coordinates in [-span, span]"
    )
    p.add_argument(
        "--layer-tol",
        type=float,
        default=r.layer_tol,
        help="per layer: relative residual that stops each block's Lanczos",
    )
    p.add_argument(
        "--layer-steps",
        type=int,
        default=r.layer_steps,
        help="per layer: at most this many Lanczos steps per block eigenvalue",
    )
    p.add_argument(
        "--layer-traces-only",
        action="store_true",
        help="per layer: traces only, no block eigenvalues (large models: --probes products in all)",
    )
    p.add_argument("--seed", type=int, default=r.seed)
    p.add_argument("--quiet", action="store_true")


def check_options(args) -> None:
    """Every option of the command, before a checkpoint or dataset is read (ConfigError if one cannot work)."""
    from pof.train import check_device

    from .report import hessian_options

    cmd = args.command
    if cmd in ("report", "compare"):
        _report_config(args)  # ReportConfig checks its own fields
        if cmd == "compare" and args.out is not None:
            check.output_dir("--out", args.out)
        return
    for name in ("samples", "batch_size"):
        if getattr(args, name) is not None:
            check.positive_int(f"--{name.replace('_', '-')}", getattr(args, name))
    check_device(args.device)
    check.output_dir("--out", args.out)
    if cmd == "hessian":
        hessian_options(
            args.top_k, args.probes, args.density_steps, args.density_runs, args.tol, args.seed
        )
    elif cmd == "layers":
        hessian_options(probes=args.probes, tol=args.tol, seed=args.seed, min_probes=2)
        check.positive_int("--max-steps", args.max_steps)
        if args.max_steps > 10_000:
            raise ConfigError(
                f"--max-steps {args.max_steps}: each step keeps a copy of every parameter; use at most 10000."
            )
    else:
        hessian_options(seed=args.seed)
    if cmd in ("landscape", "interpolate"):
        lo, hi = (check.finite(f"--range {end}", x) for end, x in zip(("LO", "HI"), args.range))
        if not lo < hi:
            raise ConfigError(f"--range {lo:g} {hi:g}: LO must be below HI.")
        check.grid_size("--steps", args.steps, getattr(args, "dims", 1), args.samples)
    if cmd == "sharpness":
        check.finite("--rho", args.rho, 0, lo_open=True)
        check.finite("--sigma", args.sigma, 0, lo_open=True)
        check.positive_int("--steps", args.steps)
        check.positive_int("--noise-samples", args.noise_samples)
        if args.steps > 10_000 or args.noise_samples > 100_000:
            raise ConfigError(
                "--steps (at most 10000) or --noise-samples (at most 100000) is too large: each is a "
                "full evaluation of the model."
            )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)  # argparse refuses unknown options itself, with exit 2
    handlers = {
        "hessian": cmd_hessian,
        "layers": cmd_layers,
        "landscape": cmd_landscape,
        "interpolate": cmd_interpolate,
        "sharpness": cmd_sharpness,
        "report": cmd_report,
        "compare": cmd_compare,
    }

    def handler(a):
        check_options(a)
        return handlers[a.command](a)

    run_dir = args.run if args.command == "report" else None
    parts = getattr(args, "part", None) or []
    if len(parts) == 1 and (args.command == "report" or getattr(args, "out", None)):
        # one part: its own folder, the one the app queued (its log gets a traceback, its status a refusal)
        run_dir = (
            Path(args.run) / "analysis" / parts[0]
            if args.command == "report"
            else Path(args.out) / parts[0]
        )
    return run_command(handler, args, run_dir)
