"""What curvature tracking (`--track`) costs a training job, and what it records, side by side.

Three parts (each a flag; none given: --overhead and --warm):

--overhead  Tracked and untracked post-trainings of the same checkpoint (same seed, same data order,
            PoF), run in this process alternately, the order rotated each repeat, each timed from
            the call of `post_train` to its return (loading, every epoch's evaluation and
            checkpoints included; the interpreter's start and imports are not). Printed per
            tracking setting: the wall-time ratio tracked / untracked - 1 (the mean of each repeat's
            paired ratio, and its range), and the tracker's own share: the sum of the points'
            "seconds" / the tracked run's wall time. The default cadence (one point per epoch plus
            one before the first step) and the variants of --digits-variants / --resnet-variants,
            written `every=3e,samples=128,probes=8` (`3e`: three epochs' steps; a number: steps).
--warm      Hessian-vector products per point, warm-started against cold: for the checkpoints of a
            real post-training (one per epoch), on the tracker's own probe subset, `top_eigenvalues`
            with the tracker's TOL and MAX_STEPS, cold (a random start) and warm (from the previous
            point's eigenvector, as the tracker chains them); products counted by the operator
            (Lanczos steps + the residual's one); both lambda_max must agree to 1e-3 relative.
--layers    What PoF and frozen-head fine-tuning (finetune-frozen) did to each layer: tracked
            post-trainings of the same checkpoint with the same seed, every layer's Hutchinson trace
            at the end / at the start (start and end use independent probes, so the standard errors
            propagate as for independent estimates), lambda_max and the last layer's exact numbers
            start -> end.

Cases: the bundled digits cnn-small (`assets/digits-cnn-small-sgd.safetensors`) and, with
--cifar-root (an image folder train/<class>/*.jpg, test/...), a 32x32 resnet20 on a class-balanced
subset of CIFAR-10 (--cifar-train images; a resnet20 epoch over all 50,000 takes about 25 minutes on
2 CPU cores). No bundled CIFAR resnet20 exists, so one is pre-trained here on that subset for
--resnet-pretrain-epochs epochs (or give --resnet-ckpt); it and the subset are kept in --work and
reused.

    python benchmarks/track_overhead.py [--cifar-root /path/to/cifar10-jpeg] [--repeats 3]
        [--overhead] [--warm] [--layers] [--threads N] [--work /tmp/track-overhead]

Seconds depend on what else the CPU runs (the load average is printed with each run); ratios are
taken between runs made back to back, and products do not depend on the load at all.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from pof.config import PostTrainConfig, PretrainConfig, TrackConfig
from pof.curvature.lanczos import top_eigenvalues
from pof.curvature.operators import HessianOperator
from pof.curvature.tracker import MAX_STEPS, TOL, Tracker, _seed, probe_indices
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.loading import load_checkpoint
from pof.models.tensors import read_safetensors
from pof.runs.run import Run
from pof.training.posttrain import post_train
from pof.training.pretrain import pretrain

ROOT = Path(__file__).resolve().parent.parent
DIGITS_CKPT = ROOT / "assets" / "digits-cnn-small-sgd.safetensors"


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


# --- the cases ---------------------------------------------------------------------------------


class Case:
    def __init__(self, name, ckpt, dataset, data_options, epochs, variants):
        self.name, self.ckpt, self.dataset = name, Path(ckpt), dataset
        self.data_options, self.epochs, self.variants = data_options, epochs, variants
        self._steps = None
        self.slug = name.split(" ")[0].replace("/", "")

    def steps_per_epoch(self) -> int:
        if self._steps is None:
            d = self.data()
            _, meta = load_checkpoint(self.ckpt, dataset=d)
            size = (meta.get("provenance") or {}).get("batch_size")
            self._steps = math.ceil(len(d.y_train) / (size or 256))  # post_train's default batch
        return self._steps

    def data(self):
        return load_dataset(self.dataset, **self.data_options)

    def config(self, method, epochs, tracking, save_every=0, lr=None) -> PostTrainConfig:
        return PostTrainConfig(
            checkpoint=str(self.ckpt),
            dataset=self.dataset,
            data_options=dict(self.data_options),
            method=method,
            epochs=epochs,
            seed=0,
            device="cpu",
            save_every=save_every,
            lr=lr,
            tracking=tracking,
        )


def tracking_of(spec: str | None, steps_per_epoch: int, probes: int | None = None) -> TrackConfig:
    """'' -> the defaults; 'every=3e,samples=128,probes=4' -> those; None -> untracked."""
    if spec is None:
        return TrackConfig(track=False)
    kw = {}
    for part in filter(None, spec.split(",")):
        key, value = part.split("=")
        if key == "every":
            kw["track_every"] = (
                int(value[:-1]) * steps_per_epoch if value.endswith("e") else int(value)
            )
        else:
            kw[f"track_{key}"] = int(value)
    if probes is not None:
        kw.setdefault("track_probes", probes)
    return TrackConfig(track=True, **kw)


def cifar_case(args) -> Case:
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    npz = work / f"cifar10-subset-{args.cifar_train}-{args.cifar_test}.npz"
    if not npz.exists():
        full = load_dataset(f"imagefolder:{args.cifar_root}", root=args.data_root)
        arrays = {}
        for split, n in (("train", args.cifar_train), ("test", args.cifar_test)):
            x, y = getattr(full, f"x_{split}"), getattr(full, f"y_{split}")
            gen = torch.Generator().manual_seed(0)
            per = n // 10  # class-balanced: the first `per` of each class in a seeded order
            order = torch.randperm(len(y), generator=gen)
            keep = torch.cat([order[y[order] == c][:per] for c in range(10)]).sort().values
            arrays[f"x_{split}"] = x[keep].numpy()
            arrays[f"y_{split}"] = y[keep].numpy()
        np.savez(npz, **arrays)
    dataset, opts = f"npz:{npz}", {"mean": "auto", "std": "auto"}
    ckpt = Path(args.resnet_ckpt) if args.resnet_ckpt else None
    if ckpt is None:
        run_dir = work / f"resnet20-pretrain-{args.cifar_train}-{args.resnet_pretrain_epochs}e"
        ckpt = run_dir / "checkpoints" / "final.safetensors"
        if not ckpt.exists():
            t0 = time.perf_counter()
            pretrain(
                PretrainConfig(
                    model="resnet20",
                    dataset=dataset,
                    data_options=opts,
                    epochs=args.resnet_pretrain_epochs,
                    batch_size=128,
                    device="cpu",
                ),
                run_dir,
                overwrite=True,
            )
            last = Run(run_dir).metrics("epoch")[-1]
            print(
                f"pre-trained resnet20 on the subset for {args.resnet_pretrain_epochs} epochs in "
                f"{time.perf_counter() - t0:.0f} s: test acc {last['test_acc']:.3f}"
            )
    return Case(
        f"resnet20 / CIFAR-10 subset {args.cifar_train}",
        ckpt,
        dataset,
        opts,
        args.resnet_epochs,
        args.resnet_variants,
    )


# --- part 1: overhead --------------------------------------------------------------------------


POINT_CPU = [0.0]  # process CPU seconds spent in Tracker.point, summed (see instrument())


def instrument() -> None:
    """Count the CPU time of every curvature point: on a shared machine a run's CPU time, unlike
    its wall time, does not grow with what else runs (with one torch thread it is the work done)."""
    original = Tracker.point

    def point(self, *a, **kw):
        t0 = time.process_time()
        try:
            return original(self, *a, **kw)
        finally:
            POINT_CPU[0] += time.process_time() - t0

    Tracker.point = point


def timed_run(case: Case, tracking: TrackConfig, out: Path) -> dict:
    """One PoF post-training: its wall and CPU seconds, its points and their seconds."""
    POINT_CPU[0] = 0.0
    t0, c0 = time.perf_counter(), time.process_time()
    post_train(case.config("pof", case.epochs, tracking), out, overwrite=True)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    points = Run(out).curvature()
    shutil.rmtree(out, ignore_errors=True)
    return {
        "wall": wall,
        "cpu": cpu,
        "points": len(points),
        "hvp": sum(p["hvp"] for p in points),
        "seconds": sum(p["seconds"] for p in points),
        "point_cpu": POINT_CPU[0],
    }


def overhead(case: Case, args) -> None:
    spe = case.steps_per_epoch()
    settings = [("untracked", None), ("default", ""), *[(v, v) for v in case.variants]]
    print(
        f"\n== overhead: {case.name}, PoF {case.epochs} epochs of {spe} steps, "
        f"{args.repeats} repeats, alternating"
    )
    out = Path(args.work) / f"overhead-{case.slug}-{os.getpid()}"
    if not getattr(args, "_warmed", False):  # once per process: caches, allocator, lazy imports
        timed_run(case, tracking_of("samples=16,probes=2", spe), out)
        args._warmed = True
    res = {name: [] for name, _ in settings}
    for r in range(args.repeats):
        order = settings[r % len(settings) :] + settings[: r % len(settings)]
        for name, spec in order:
            m = timed_run(case, tracking_of(spec, spe), out)
            res[name].append(m)
            print(
                f"  repeat {r + 1} {name:<24} wall {m['wall']:7.2f} s  cpu {m['cpu']:7.2f} s  "
                f"points {m['points']:3d}  Σseconds {m['seconds']:6.2f}  "
                f"point cpu {m['point_cpu']:6.2f} s  ({load()})",
                flush=True,
            )
    print(
        "ratio-1: tracked / untracked - 1, mean of paired repeats [min, max]; share: the points'"
        " time / the tracked run's (Σ of their 'seconds' / wall; their CPU / the run's CPU)"
    )
    print(
        f"{'setting':<24} {'wall s':>7} {'wall ratio-1':>22} {'cpu s':>7} {'cpu ratio-1':>22} "
        f"{'points':>6} {'hvp/pt':>6} {'Σs/wall':>8} {'cpu share':>9}"
    )
    base = res["untracked"]

    def spread(key, ms):
        rs = [a[key] / b[key] - 1 for a, b in zip(ms, base, strict=True)]
        return f"{statistics.mean(rs):7.1%} [{min(rs):5.1%}, {max(rs):5.1%}]"

    for name, _ in settings:
        ms = res[name]
        pts = ms[0]["points"]
        hvp = ms[0]["hvp"] / pts if pts else 0.0
        share_wall = statistics.mean(m["seconds"] / m["wall"] for m in ms)
        share_cpu = statistics.mean(m["point_cpu"] / m["cpu"] for m in ms)
        print(
            f"{name:<24} {statistics.median(m['wall'] for m in ms):7.2f} "
            f"{spread('wall', ms):>22} {statistics.median(m['cpu'] for m in ms):7.2f} "
            f"{spread('cpu', ms):>22} {pts:6d} {hvp:6.1f} {share_wall:8.1%} {share_cpu:9.1%}"
        )


# --- parts 2 and 3: tracked post-trainings kept in --work ---------------------------------------


def kept_run(case: Case, method: str, args) -> Run:
    """A tracked post-training with a checkpoint per epoch, made once and reused."""
    lr = args.layer_lr
    name = f"{case.slug}-{method}-{case.layer_epochs}e-p{case.layer_probes}"
    out = Path(args.work) / (name + (f"-lr{lr:g}" if lr else ""))
    run = Run(out)
    if not (out / "checkpoints" / "final.safetensors").exists():
        t0 = time.perf_counter()
        cfg = case.config(
            method,
            case.layer_epochs,
            tracking_of(f"every={case.layer_epochs}e", case.steps_per_epoch(), case.layer_probes),
            save_every=1,
            lr=lr,
        )
        post_train(cfg, out, overwrite=True)
        print(f"  ran {out.name} in {time.perf_counter() - t0:.0f} s ({load()})", flush=True)
    return run


def probe_batch(d, meta, run: Run):
    """The tracker's own probe subset of `run` (pof.training.tracking.make_tracker)."""
    setup = run.curvature_setup()
    b = Batches(d.x_train, d.y_train, meta["mean"], meta["std"], 1)
    idx = probe_indices(len(d.y_train), setup["samples"], 0)
    assert idx == setup["probe_indices"]
    at = torch.tensor(idx)
    return b.normalize(b.x[at]), b.y[at]


def warm_vs_cold(case: Case, args) -> None:
    run = kept_run(case, "pof", args)
    d = case.data()
    model, meta = load_checkpoint(case.ckpt, dataset=d)
    x, y = probe_batch(d, meta, run)
    ckpts = ["initial"] + [f"epoch-{e:04d}" for e in range(1, case.layer_epochs + 1)]
    print(
        f"\n== warm vs cold: {case.name}, {len(ckpts)} checkpoints of a PoF post-training "
        f"(one per epoch), {len(y)} probe samples, tol {TOL:g}, max {MAX_STEPS} steps"
    )
    print(f"{'point':<12} {'cold hvp':>8} {'warm hvp':>8} {'λ cold':>12} {'λ warm':>12} {'rel':>9}")
    prev, cold_n, warm_n, worst = None, [], [], 0.0
    for i, name in enumerate(ckpts):
        model.load_state_dict(read_safetensors(run.checkpoint(name))[0])
        step = i * case.steps_per_epoch()
        res = {}
        for kind, start in (("cold", None), ("warm", prev)):
            if kind == "warm" and prev is None:
                continue
            op = HessianOperator(model, [(x, y)])
            try:
                t = top_eigenvalues(
                    op,
                    1,
                    tol=TOL,
                    max_steps=MAX_STEPS,
                    seed=_seed(0, step, 1),
                    start=start,
                    keep_vectors=True,
                )
                res[kind] = (op.n_hvp, t.eigenvalues[0], t.vectors[0].detach().clone(), t)
            finally:
                op.close()
        c = res["cold"]
        w = res.get("warm", c)
        prev = w[2]  # the tracker chains its warm vectors
        if "warm" not in res:
            print(f"{name:<12} {c[0]:8d} {'-':>8} {c[1]:12.6g} {'-':>12}")
            continue
        rel = abs(w[1] - c[1]) / abs(c[1])
        worst = max(worst, rel)
        cold_n.append(c[0])
        warm_n.append(w[0])
        print(f"{name:<12} {c[0]:8d} {w[0]:8d} {c[1]:12.6g} {w[1]:12.6g} {rel:9.1e}")
    cm, wm = statistics.mean(cold_n), statistics.mean(warm_n)
    print(
        f"mean over {len(cold_n)} warm-startable points: cold {cm:.1f} products, warm {wm:.1f}, "
        f"warm/cold {wm / cm:.2f}; worst λ_max disagreement {worst:.1e} "
        f"({'within' if worst <= 1e-3 else 'OUTSIDE'} 1e-3)"
    )


def layers(case: Case, args) -> None:
    runs = {m: kept_run(case, m, args) for m in ("pof", "finetune-frozen")}
    series = {m: r.curvature() for m, r in runs.items()}
    first = series["pof"][0]
    print(
        f"\n== layers: {case.name}, {case.layer_epochs} epochs, probes {case.layer_probes}, "
        f"end / start (± propagated standard error)"
    )
    for m, s in series.items():
        acc = [r["test_acc"] for r in runs[m].metrics("epoch")]
        print(f"  {m}: {len(s)} points, test acc {acc[0]:.4f} -> {acc[-1]:.4f}")
    assert series["finetune-frozen"][0]["trace"] == first["trace"]  # same start, same probes
    heads = " ".join(f"{m + ' end/start':>24}" for m in series)
    print(f"{'layer':<22} {'kind':<9} {'params':>7} {'start trace':>18} {heads}")
    for i, layer in enumerate(first["layers"]):
        cells = []
        for s in series.values():
            end = s[-1]["layers"][i]
            r, se = ratio(end["trace"], end["trace_stderr"], layer["trace"], layer["trace_stderr"])
            cells.append(f"{r:15.3f} ± {se:6.3f}")
        st = f"{layer['trace']:.4g} ± {layer['trace_stderr']:.2g}"
        row = f"{layer['name']:<22} {layer['kind']:<9} {layer['n_params']:7d} {st:>18}"
        print(row, " ".join(cells))
    for key, label in (
        ("trace", "whole network trace"),
        ("top_eigenvalue", "λ_max (Lanczos)"),
        ("last_layer_top", "last layer λ_max (exact)"),
        ("last_layer_trace", "last layer trace (exact)"),
    ):
        cells = []
        for s in series.values():
            a, b = s[0][key], s[-1][key]
            if key == "trace":
                r, se = ratio(b, s[-1]["trace_stderr"], a, s[0]["trace_stderr"])
                cells.append(f"{a:.4g} -> {b:.4g} ({r:.3f} ± {se:.3f})")
            else:
                cells.append(f"{a:.4g} -> {b:.4g} ({b / a:.3f})")
        print(f"{label:<26} " + "   ".join(f"{m}: {c}" for m, c in zip(series, cells, strict=True)))
    path = Path(args.work) / f"layers-{case.slug}.json"
    path.write_text(json.dumps(series))


def ratio(a, sa, b, sb) -> tuple[float, float]:
    """a / b and its standard error for independent estimates a ± sa, b ± sb."""
    r = a / b
    return r, abs(r) * math.hypot(sa / a, sb / b)


def main():
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--overhead", action="store_true", help="part 1: wall-time overhead")
    ap.add_argument("--warm", action="store_true", help="part 2: products, warm vs cold")
    ap.add_argument("--layers", action="store_true", help="part 3: per-layer traces, end / start")
    ap.add_argument("--cifar-root", help="CIFAR-10 image folder (train/<class>/*.jpg, test/...)")
    ap.add_argument("--data-root", help="where the decoded image folder is cached (pof's default)")
    ap.add_argument("--work", default="/tmp/track-overhead", help="runs, subset and checkpoints")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's own)")
    ap.add_argument("--skip-digits", action="store_true")
    ap.add_argument("--digits-epochs", type=int, default=10, help="post-training epochs timed")
    ap.add_argument(
        "--digits-variants",
        nargs="*",
        default=["samples=128", "every=5e", "every=10e", "every=10e,samples=128"],
    )
    ap.add_argument("--cifar-train", type=int, default=5000, help="training subset (balanced)")
    ap.add_argument("--cifar-test", type=int, default=1000)
    ap.add_argument("--resnet-ckpt", help="a resnet20 checkpoint (default: pre-train one)")
    ap.add_argument("--resnet-pretrain-epochs", type=int, default=4)
    ap.add_argument("--resnet-epochs", type=int, default=1, help="post-training epochs timed")
    ap.add_argument("--resnet-variants", nargs="*", default=["samples=128"])
    ap.add_argument("--layer-epochs", type=int, nargs=2, default=[10, 2], metavar=("DIGITS", "RN"))
    ap.add_argument(
        "--layer-probes",
        type=int,
        nargs=2,
        default=[32, 16],
        metavar=("DIGITS", "RN"),
        help="Hutchinson probes per point, --layers",
    )
    ap.add_argument("--layer-lr", type=float, help="post-training rate (default: the checkpoint's)")
    args = ap.parse_args()
    if not (args.overhead or args.warm or args.layers):
        args.overhead = args.warm = True
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, cpu, {load()}")
    instrument()
    cases = []
    if not args.skip_digits:
        cases.append(
            Case(
                "cnn-small / digits",
                DIGITS_CKPT,
                "digits",
                {},
                args.digits_epochs,
                args.digits_variants,
            )
        )
        cases[-1].layer_epochs, cases[-1].layer_probes = args.layer_epochs[0], args.layer_probes[0]
    if args.cifar_root:
        cases.append(cifar_case(args))
        cases[-1].layer_epochs, cases[-1].layer_probes = args.layer_epochs[1], args.layer_probes[1]
    for case in cases:
        if args.overhead:
            overhead(case, args)
        if args.warm:
            warm_vs_cold(case, args)
        if args.layers:
            layers(case, args)


if __name__ == "__main__":
    main()
