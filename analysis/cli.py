"""`python -m analysis`: curvature, landscapes and sharpness of checkpoints, cached on disk.

Every result is written as JSON into --out, named by a key over (the checkpoints' bytes, the
directions, the data, the options): asking the same question twice reads the file instead of
computing again. A landscape stopped half-way (Ctrl-C, killed job) continues where it stopped.

Exit codes: 0 success; 1 a part failed or an unexpected error (a bug: one line on stderr, the
traceback with POF_DEBUG=1 or in the part's log); 2 bad input, refused before any work (an option
out of range, a grid too large to compute, an unusable or non-finite checkpoint, unusable
directions, an unknown dataset, an unwritable --out); 3 stopped (a cancel, Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis import cache
from analysis.compare import ON_REQUEST, PARTS, interpolation_label
from analysis.configs import (
    HessianConfig,
    InterpolationConfig,
    LandscapeConfig,
    LayersConfig,
    ReportConfig,
    SharpnessConfig,
    TrackRunConfig,
)
from analysis.console import (
    Found,
    bar,
    hvp_bar,
    layers_csv,
    show_hessian,
    show_interpolation,
    show_layers,
    show_sharpness,
    show_track,
)
from analysis.reports import (
    KINDS,
    EvalData,
    directions_of,
    hessian_of,
    interpolation_of,
    landscape_of,
    layers_cost_of,
    layers_of,
    sharpness_of,
)
from pof import validate as check
from pof.cli import add_data_args, add_model_args, model_source, run_command
from pof.data.names import data_options
from pof.options import add_options, from_args
from pof.progress import Stopped
from pof.signals import stop_on_sigterm
from pof.validate import ConfigError

EXIT_OK, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 2, 3


# --- one generic measurement: checkpoints -> cached reports -> shown ---------------------------


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
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k != "device"}


def _cached(args, kind: str, key: str, compute, **about):
    """(results, path) for `key` in --out: read back, or computed and stored."""
    path = Path(args.out) / f"{key}.json"
    saved, hit = cache.cached(path, kind, KINDS[kind], compute, key=key, **about)
    if hit:
        print(f"(cached: {path})", file=sys.stderr)
    return saved.results, path


def _checkpoints(args, command: Command) -> tuple[list[str], bool]:
    """The checkpoints named by the command's positional arguments, and whether each gets its own
    report (CKPT ...) rather than one report on all of them (interpolate's A B)."""
    files, each = [], False
    for names, kw in command.positional:
        value = getattr(args, names[0])
        files += value if isinstance(value, list) else [value]
        each = each or kw.get("nargs") == "+"
    return files, each


def measure(args, cfg, command: Command) -> int:
    """The command's reports, each read from the cache in --out or computed by its library
    function (analysis.reports) and stored there; then printed (or, with --json, dumped)."""
    files, each = _checkpoints(args, command)
    groups = [[f] for f in files] if each else [files]
    if each:  # refuse bad input before the first (minutes-long) report, not after it
        from pof.models.formats import CheckpointError

        for checkpoint in files:
            if not Path(checkpoint).is_file():
                raise CheckpointError(f"no such checkpoint file: {checkpoint}")
    found = []
    try:
        for group in groups:
            found.append(_report(args, cfg, command, group))
    except Stopped:  # between two checkpoints' reports: those finished are cached
        if not each:
            raise
        print("stopped", file=sys.stderr)
        return EXIT_STOPPED
    if getattr(args, "json", False):
        dicts = [{"checkpoint": f.label, **f.result.to_dict()} for f in found]
        print(json.dumps(dicts if each else dicts[0], indent=1))
        return EXIT_OK
    command.show(found)
    return EXIT_OK


def _report(args, cfg, command: Command, files: list[str]) -> Found:
    """One report on `files` (the first is measured; the others are the library function's
    further models), from the cache or computed and cached."""
    data = _eval_data(args, cfg, files[0])
    others = [data.load_other(f) for f in files[1:]]
    key = cache.key(command.kind, files, data=data.spec, **command.key(cfg))
    label = files[0] if len(files) == 1 else interpolation_label(*files)

    def compute():
        if command.estimate is not None and not args.quiet:
            estimate = command.estimate(data, cfg)
            print(f"{Path(files[0]).name}: {estimate}", file=sys.stderr, flush=True)
        progress, close = command.bar(args.quiet, files[0])
        try:
            return {label: command.compute(data, cfg, *others, progress=progress)}
        finally:
            close()

    about = {"checkpoint": files[0]} if len(files) == 1 else {"checkpoints": files}
    found, path = _cached(args, command.kind, key, compute, **about)
    (result,) = found.values()
    if command.beside is not None:
        command.beside(path, result)
    return Found(label, result, path, data.eval_set)


def layers_estimate(data: EvalData, cfg: LayersConfig) -> str:
    cost = layers_cost_of(data, cfg)
    advice = cost.suggestion("--traces-only")
    return f"expected {cost.text()}" + (f"\n{advice}" if advice else "")


# --- landscape: directions, a second checkpoint, and a grid that resumes -----------------------


def _directions(args, cfg: LandscapeConfig, data):
    from analysis.measures.landscape import Directions, difference_direction

    model = data.model
    if args.towards:  # axis 1 runs from this checkpoint (0) to the other (1); axis 2 is random
        dirs = difference_direction(model, data.load_other(args.towards))
        if cfg.dims == 2:
            extra = directions_of(model, cfg, 1)
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
    dirs = directions_of(model, cfg)
    if args.directions:
        dirs.save(args.directions)
        print(
            f"directions saved to {args.directions} (seed {cfg.seed}); pass it again to reuse them",
            file=sys.stderr,
        )
    return dirs


def landscape(args, cfg: LandscapeConfig, command: Command) -> int:
    """The grid along the directions for the checkpoint (and --compare's), each cached; a grid
    stopped half-way is kept beside the cache and continued by the same command."""
    from analysis import results
    from analysis.measures.landscape import Landscape

    data = _eval_data(args, cfg, args.checkpoint)
    dirs = _directions(args, cfg, data)
    dir_key = hashlib.sha256(
        b"".join(v.numpy().tobytes() for d in dirs.vectors for v in d.values())
    ).hexdigest()
    models = [(args.checkpoint, data.model)]
    if args.compare:
        models.append((args.compare, data.load_other(args.compare)))
    out = Path(args.out)
    shown = []
    progress, close = bar(args.quiet)
    try:
        for ckpt, model in models:
            key = cache.key(
                command.kind,
                [ckpt],
                dirs=dir_key,
                axes=cfg.axes,
                data=data.spec,
                batch=cfg.batch_size,
            )
            partial_path = out / f"{key}.partial.json"

            def compute(ckpt=ckpt, model=model, partial_path=partial_path):
                saved = results.load(partial_path, command.kind, Landscape, cache.warn)
                partial = saved.results.get(ckpt) if saved else None
                if partial:
                    print(
                        f"continuing {partial.done}/{partial.total} points from {partial_path}",
                        file=sys.stderr,
                    )
                res = landscape_of(
                    data,
                    cfg,
                    model,
                    dirs,
                    partial=partial,
                    save_partial=lambda r: results.save(partial_path, command.kind, {ckpt: r}),
                    progress=progress,
                )
                return {ckpt: res}

            try:
                found, path = _cached(args, command.kind, key, compute, checkpoint=ckpt)
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


# --- the comparison parts (analysis.compare's jobs) ---------------------------------------------


def _run_parts(compute_part, parts, quiet: bool) -> int:
    for part in parts:
        progress, close = bar(quiet)
        try:
            job = compute_part(part, progress)
        finally:
            close()
        state = job.status()["state"]
        print(f"{part}: {state}, result in {job.path / 'result.json'}")
        if state != "done":
            return EXIT_STOPPED
    return EXIT_OK


def report_parts(args, cfg: ReportConfig, command: Command) -> int:
    from analysis.compare import report

    return _run_parts(
        lambda part, progress: report(args.run, cfg, part, progress), args.part, args.quiet
    )


def _report_folder(args) -> Path | str:
    """The run, or with one part that part's own folder, the one the app queued (its log gets a
    traceback, its status a refusal)."""
    return Path(args.run) / "analysis" / args.part[0] if len(args.part) == 1 else args.run


def _compare_folder(args) -> Path | None:
    """With one part and --out, that part's own folder (as `report`'s)."""
    return Path(args.out) / args.part[0] if len(args.part) == 1 and args.out else None


def compare_parts(args, cfg: ReportConfig, command: Command) -> int:
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


# --- curvature over time from a run's checkpoints (analysis.tracking) ---------------------------


def track(args, cfg: TrackRunConfig, command: Command) -> int:
    """The run's curvature series from its checkpoints, into RUN/analysis/track; printed (or, with
    --json, dumped)."""
    from analysis.tracking import plan, track_run

    planned = plan(args.run, cfg)
    if planned.state in ("queued", "running"):
        print(
            f"note: {planned.run.path} is still {planned.state}; the series covers the "
            f"{len(planned.checkpoints)} checkpoints saved so far (run this again later for the "
            f"rest).",
            file=sys.stderr,
        )
    progress, close = bar(args.quiet)
    try:
        job = track_run(args.run, cfg, progress, planned=planned)
    finally:
        close()
    if job.status().get("state") != "done":
        print(f"stopped; run the same command again to recompute {job.path}", file=sys.stderr)
        return EXIT_STOPPED
    setup, points = job.curvature_setup(), job.curvature()
    if args.json:
        print(json.dumps({"setup": setup, "points": points}, indent=1))
        return EXIT_OK
    show_track(setup, points, job.path)
    return EXIT_OK


# --- the commands --------------------------------------------------------------------------------


def _arg(*names: str, **kw) -> tuple:
    """An argument as the table holds it: its names and argparse's keywords."""
    return names, kw


@dataclass(frozen=True)
class Command:
    """A subcommand. Its flags: `positional`, the data and model flags (`checkpoint_flags`), one
    per field of `config` (pof.options; a `range` field as --range LO HI), --out (`out`), --quiet,
    then the hand-written `flags`. `run(args, config, command)` does its work; `measure` is the
    generic one, for which `compute` (analysis.reports: EvalData, config, further models -> a
    result of `kind`) makes a report, `key` names what in the config its cache key depends on,
    `bar` draws its progress, `beside` writes a file next to the cached JSON, and `show` prints
    the reports. `folder(args)` is the run folder its errors are reported to, if any."""

    config: type
    run: Callable[..., int]
    help: str
    description: str | None = None
    positional: tuple = (_arg("checkpoint"),)
    flags: tuple = ()
    checkpoint_flags: bool = True
    out: bool = True
    folder: Callable[[argparse.Namespace], Path | str | None] = lambda args: None
    # a measurement (run=measure); a landscape uses `kind` too
    kind: str = ""
    compute: Callable[..., Any] | None = None
    key: Callable[[Any], dict] = lambda cfg: {"options": _options(cfg)}
    bar: Callable = lambda quiet, checkpoint: bar(quiet)
    beside: Callable[[Path, Any], None] | None = None
    show: Callable[[list[Found]], None] | None = None
    estimate: Callable[[EvalData, Any], str] | None = None  # said before computing


PART = _arg(
    "--part",
    nargs="+",
    choices=PARTS + ON_REQUEST,
    default=list(PARTS),
    help="which analyses to compute (crosscheck: PyHessian's eigenvalues and trace beside this "
    "project's, on request only)",
)

COMMANDS = {
    "hessian": Command(
        HessianConfig,
        measure,
        help="top eigenvalues, trace, density, per layer; exact last layer",
        flags=(_arg("--json", action="store_true", help="print the whole result as JSON"),),
        kind="hessian",
        compute=hessian_of,
        show=show_hessian,
    ),
    "layers": Command(
        LayersConfig,
        measure,
        help="per-layer sharpness: each layer's Hessian block trace and top eigenvalue",
        description="For every parameterized layer (bias folded in, each normalization layer its "
        "own block): its Hessian block's trace ± standard error, trace per parameter, top "
        "eigenvalue with its residual and share of the whole trace; the whole network for "
        "reference; the classifier marked *. One Hutchinson pass gives every trace; each block's "
        "eigenvalue costs one full-network Hessian-vector product per Lanczos step. Cached as "
        "JSON (and CSV) in --out; with two or more checkpoints, the ratios to the first are "
        "printed per layer.",
        positional=(_arg("checkpoints", nargs="+", metavar="CKPT"),),
        flags=(
            _arg(
                "--json",
                action="store_true",
                help="print the reports as a JSON list (one per checkpoint)",
            ),
        ),
        kind="layers",
        compute=layers_of,
        bar=lambda quiet, checkpoint: hvp_bar(quiet, Path(checkpoint).name),
        beside=layers_csv,
        show=show_layers,
        estimate=layers_estimate,
    ),
    "landscape": Command(
        LandscapeConfig,
        landscape,
        help="1-D or 2-D loss/accuracy slices along saved directions",
        flags=(
            _arg("--compare", help="a second checkpoint, evaluated along the same directions"),
            _arg(
                "--directions",
                help="directions file (safetensors, whatever its name): read if it exists, else "
                "made and saved there",
            ),
            _arg(
                "--towards",
                metavar="CKPT",
                help="first axis: the direction from the checkpoint to CKPT over parameters (0 = "
                "checkpoint, 1 = CKPT's parameters with the checkpoint's BN statistics; "
                "`interpolate` moves those too)",
            ),
        ),
        kind="landscape",
    ),
    "interpolate": Command(
        InterpolationConfig,
        measure,
        help="loss/accuracy on the line between two checkpoints",
        positional=(_arg("checkpoint_a"), _arg("checkpoint_b")),
        kind="interpolation",
        compute=interpolation_of,
        key=lambda cfg: {"alphas": cfg.alphas, "batch": cfg.batch_size},
        show=show_interpolation,
    ),
    "sharpness": Command(
        SharpnessConfig,
        measure,
        help="worst-case (plain, adaptive) and average-case sharpness",
        kind="sharpness",
        compute=sharpness_of,
        show=show_sharpness,
    ),
    "report": Command(
        ReportConfig,
        report_parts,
        help="before vs after for a post-training run: per layer, Hessians, landscapes, "
        "interpolation",
        description="Everything the app's Compare page shows, for RUN/checkpoints/initial and "
        "final; each part is written to RUN/analysis/PART/result.json (a run folder with its own "
        "status).",
        positional=(_arg("run", help="a finished post-training run folder"),),
        flags=(PART,),
        checkpoint_flags=False,  # a run's checkpoints say what they are and what they were on
        out=False,
        folder=_report_folder,
    ),
    "compare": Command(
        ReportConfig,
        compare_parts,
        help="the same analyses for any one or two checkpoints (yours included)",
        description="Everything the app's Inspect page shows, for one checkpoint or two (the "
        "first draws the landscape directions; the interpolation runs from the first to the "
        "second); each part is written to OUT/PART/result.json.",
        positional=(
            _arg("checkpoints", nargs="+", metavar="CHECKPOINT", help="one or two checkpoints"),
        ),
        flags=(
            PART,
            _arg(
                "--label",
                action="append",
                metavar="NAME",
                help="what to call each checkpoint in the results, in order (default: its file "
                "name)",
            ),
            _arg(
                "--out",
                help="folder for the parts (default: results/compare/KEY, KEY from the "
                "checkpoints' content, the data and the options)",
            ),
        ),
        out=False,
        folder=_compare_folder,
    ),
    "track": Command(
        TrackRunConfig,
        track,
        help="curvature over time from a run's saved checkpoints (initial, epoch-NNNN, final)",
        description="The series a training job records with --track, computed afterwards from "
        "the checkpoints the run kept (initial, every epoch-NNNN of --save-every, final): the "
        "whole network's top Hessian eigenvalue (Lanczos warm-started from checkpoint to "
        "checkpoint) against the stability threshold of the rate each epoch ended with, every "
        "layer's trace ± standard error and the last layer's exact numbers, on the run's probe "
        "subset. Written to RUN/analysis/track/curvature.json and curvature.jsonl (a live series "
        "in RUN/curvature.jsonl is never touched); a running job is measured on the checkpoints "
        "saved so far.",
        positional=(_arg("run", help="a pretrain or post-train run folder"),),
        flags=(
            _arg(
                "--json",
                action="store_true",
                help='print {"setup": ..., "points": [...]} as JSON',
            ),
        ),
        checkpoint_flags=False,  # the run's checkpoints say what they are and what they were on
        out=False,
        folder=lambda args: Path(args.run) / "analysis" / "track",
    ),
}

# the command -> its config; flags of these fields are generated (tests/test_analysis_options.py)
CONFIGS = {name: command.config for name, command in COMMANDS.items()}


# --- parser ------------------------------------------------------------------------------------


def _range_flag(p: argparse.ArgumentParser, cls) -> None:
    """--range LO HI: two numbers (the hand-written flag of a config's `range` field, if any)."""
    for f in dataclasses.fields(cls):
        if f.name == "range":
            p.add_argument(
                "--range",
                type=float,
                nargs=2,
                default=list(f.default),
                metavar=("LO", "HI"),
                help=f.metadata["help"],
            )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name,
            formatter_class=argparse.ArgumentDefaultsHelpFormatter,
            help=command.help,
            description=command.description,
        )
        for names, kw in command.positional:
            p.add_argument(*names, **kw)
        if command.checkpoint_flags:
            add_data_args(p, required=False)  # --dataset (default: the checkpoint's) ...
            add_model_args(p)
        add_options(p, command.config)
        if command.out:
            p.add_argument("--out", default="results", help="folder for results (and the cache)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        _range_flag(p, command.config)
        for names, kw in command.flags:
            p.add_argument(*names, **copy.deepcopy(kw))  # a default list of each parser's own
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
    command = COMMANDS[args.command]

    def handler(a):
        return command.run(a, check_options(a), command)

    stop_on_sigterm()  # SIGTERM stops a job as a cancel does (exit 3)
    return run_command(handler, args, command.folder(args))
