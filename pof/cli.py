"""`python -m pof`: pre-train, evaluate and inspect runs from the command line.

Exit codes (scripts can rely on them):
    0  success
    1  the run failed: it diverged (its status.json says why), a file could not be read or written
       mid-run, or an unexpected error (a bug: one line here, the traceback in RUN/log.txt, or on
       the terminal with POF_DEBUG=1)
    2  bad input, refused before any work and without leaving a folder behind: an option out of
       range, an unknown dataset, an unusable or non-finite checkpoint, an occupied or unwritable
       run folder, a corrupt saved configuration on --resume
    3  the run was cancelled (`runs cancel`, the app's Cancel, Ctrl-C or SIGTERM); it can be
       resumed with --resume
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import traceback
from dataclasses import fields
from pathlib import Path

from . import validate
from .config import (
    DATA_ROOT_HELP,
    DATASET_HELP,
    SVHN_EXTRA_HELP,
    PoFConfig,
    PostTrainConfig,
    PretrainConfig,
    TrackConfig,
)
from .data.names import DatasetError, data_options
from .hints import marked
from .options import add_options, cli_fields, from_args, to_argv
from .progress import Diverged, Stopped
from .signals import stop_on_sigterm
from .validate import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_CANCELLED = 0, 1, 2, 3


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Each flag's default after its help, unless it is None or the help already says it."""

    def _get_help_string(self, action):
        help = action.help or ""
        if action.default in (None, []) or "(default" in help:
            return help
        return super()._get_help_string(action)


def _arch_arg(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    """The data flags of a command without a training config (evaluate, import, the analysis):
    --dataset, --data-root and --svhn-extra with the training configs' help, and the flags of
    `data_options`."""
    p.add_argument("--dataset", required=required, help=DATASET_HELP)
    p.add_argument("--data-root", default=None, help=DATA_ROOT_HELP)
    p.add_argument("--svhn-extra", action="store_true", help=SVHN_EXTRA_HELP)
    _add_data_option_flags(p)


def _add_data_option_flags(p: argparse.ArgumentParser) -> None:
    """The flags pof.data.names.data_options parses into a config's `data_options`."""
    p.add_argument(
        "--classes",
        default=None,
        metavar="NAME,NAME,...",
        help="class names in label order, comma-separated: replaces an image folder's alphabetical "
        "order, orders a CSV's string labels, names integer labels; must match a registry "
        "dataset's own list",
    )
    p.add_argument(
        "--label-column",
        default=None,
        metavar="COLUMN",
        help="csv: the column holding the labels; 'label' if not given",
    )
    p.add_argument(
        "--mean",
        default=None,
        metavar="auto|X,X,...",
        help="input mean: 'auto' (from the training split) or one value per channel ([0, 1] units "
        "for images) or feature, or one for all; if not given: from the training split for "
        "registry datasets and image folders, 0 for npz/csv (used as they are)",
    )
    p.add_argument(
        "--std",
        default=None,
        metavar="auto|X,X,...",
        help="input standard deviation, like --mean (values > 0); if not given: from the training "
        "split for registry datasets and image folders, 1 for npz/csv",
    )
    p.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        metavar="F",
        help="csv without a split column: the share of each class's rows held out for testing "
        "(a seeded split stratified by label, recorded with the run); 0.2 if not given",
    )
    p.add_argument(
        "--split-seed",
        type=int,
        default=None,
        metavar="N",
        help="csv without a split column: the seed of that split; 0 if not given",
    )


def _add_fields(parser, config_cls, names: tuple[str, ...]) -> None:
    """The generated flags of only these fields of `config_cls`."""

    others = tuple(f.name for f in cli_fields(config_cls) if f.name not in names)
    add_options(parser, config_cls, exclude=others)


def _field_help(config_cls, name: str) -> str:
    """A field's help text, for the flag a front end parses by hand (declared cli=False)."""
    return next(f.metadata["help"] for f in fields(config_cls) if f.name == name)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """How to read a checkpoint without this project's metadata (every command that takes one):
    PostTrainConfig's arch, arch_args, classifier and key_map."""

    g = p.add_argument_group("a model of your own (files without this project's metadata)")
    _add_fields(g, PostTrainConfig, ("arch", "classifier", "weights_key"))
    g.add_argument(
        "--arch-arg",
        action="append",
        type=_arch_arg,
        default=[],
        metavar="KEY=VALUE",
        help=_field_help(PostTrainConfig, "arch_args"),
    )
    g.add_argument(
        "--key-map",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help=_field_help(PostTrainConfig, "key_map"),
    )


def model_source(args):
    from .models.formats import ModelSource
    from .models.registry import ARCHS

    if args.arch in ARCHS:  # the registry's arguments are known: check them like pretrain's
        validate.arch_args("--arch-arg", dict(args.arch_arg), ARCHS[args.arch].defaults)
    return ModelSource(
        args.arch, dict(args.arch_arg), args.classifier, list(args.key_map), args.weights_key
    )


def print_warnings(meta: dict) -> None:
    """What loading did to a file's keys, and what the user must know, on stderr."""
    for n in meta.get("notes", []):
        print(f"note: {n}", file=sys.stderr)
    for w in meta.get("warnings", []):
        print(f"warning: {w}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:

    parser = argparse.ArgumentParser(
        prog="python -m pof",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "pretrain",
        help="train a model from scratch (the baseline PoF post-trains)",
        description="Train a model from scratch with Nesterov SGD or SAM into a run folder.",
        formatter_class=_HelpFormatter,
    )
    add_options(p, PretrainConfig)
    p.add_argument(
        "--arch-arg",
        action="append",
        type=_arch_arg,
        default=[],
        metavar="KEY=VALUE",
        help=_field_help(PretrainConfig, "arch_args"),
    )
    _add_data_option_flags(p)
    _add_tracking_flags(p)
    _add_job_flags(p)

    _add_post_train_parser(sub)

    p = sub.add_parser(
        "evaluate",
        help="loss and accuracy of a checkpoint on a dataset",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        help="a checkpoint of this project, or any model file with --arch and --dataset",
    )
    add_data_args(p, required=False)
    add_model_args(p)
    p.add_argument(
        "--split", choices=["test", "train", "both"], default="test", help="which split to evaluate"
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = sub.add_parser(
        "import",
        help="write a project checkpoint (weights + full metadata) from any model file",
        description="Load a model file of your own once (with --arch, --dataset and, if needed, "
        "--classifier and --key-map) and write it as a project checkpoint, which every "
        "command and the app then take as it is.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "checkpoint",
        help="the model file: a state dict (.pt/.pth/.ckpt, any common wrapper), "
        "safetensors, or a torch.export .pt2",
    )
    add_data_args(p, required=True)
    add_model_args(p)
    p.add_argument("--out", required=True, help="the .safetensors file to write")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")

    p = sub.add_parser("runs", help="list run folders or show one")
    rs = p.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    q = rs.add_parser("list", help="list the runs under a folder")
    q.add_argument("root", nargs="?", default="runs", help="folder to search")
    q.add_argument("--json", action="store_true")
    q = rs.add_parser("show", help="config, status and per-epoch metrics of a run")
    q.add_argument("run", help="run folder")
    q.add_argument("--json", action="store_true")
    q = rs.add_parser("cancel", help="ask a running job to stop at its next step")
    q.add_argument("run", help="run folder")
    return parser


def _add_job_flags(p: argparse.ArgumentParser) -> None:
    """Where and how a training job runs: not part of what it computes, so not config fields."""
    p.add_argument(
        "--out", required=True, help="run folder to create (config, status, metrics, checkpoints)"
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last finished epoch",
    )
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_post_train_parser(sub) -> None:

    p = sub.add_parser(
        "post-train",
        help="post-train a checkpoint with PoF or one of its controls",
        description="Post-train the feature extractor of a trained classifier with PoF (Sato et "
        "al., ICML 2022), or with a control for the same budget. Under torchrun "
        "(torchrun --nproc_per_node=N -m pof post-train ...) it runs data-parallel.",
        formatter_class=_HelpFormatter,
    )
    p.add_argument(
        "checkpoint", nargs="?", default=None, help=_field_help(PostTrainConfig, "checkpoint")
    )
    add_options(p, PostTrainConfig, exclude=("arch", "classifier", "weights_key"))
    _add_data_option_flags(p)
    add_model_args(p)
    add_options(p.add_argument_group("PoF (defaults: docs/method.md)"), PoFConfig)
    _add_tracking_flags(p)
    _add_job_flags(p)


def _add_tracking_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group(
        "curvature over time (written to curvature.jsonl in the run folder; "
        "python -m analysis track RUN computes it afterwards from saved checkpoints)"
    )
    add_options(g, TrackConfig)


def _progress_bar(quiet: bool):
    """A pof.progress callback drawing a tqdm bar of steps, and a function that closes it."""
    if quiet:
        return None, lambda: None
    from tqdm import tqdm

    bar = None

    def update(done: int, total: int, label: str, **info) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, initial=done - 1, unit="step", dynamic_ncols=True)
        if "loss" in info:
            bar.set_postfix_str(f"{label} loss {info['loss']:.4f}", refresh=False)
        bar.update(done - bar.n)
        if "epoch_done" in info:
            r = info["epoch_done"]
            bar.write(
                f"epoch {r['epoch']:>4}  train loss {r['train_loss']:.4f} acc "
                f"{r['train_acc']:.4f}  test loss {r['test_loss']:.4f} acc {r['test_acc']:.4f}  "
                f"lr {r['lr']:.3g}  {r['epoch_time']:.1f}s"
            )

    return update, lambda: bar.close() if bar else None


def pretrain_config(args):
    """The PretrainConfig of parsed `pretrain` options; every value is checked here
    (ConfigError)."""

    return from_args(
        PretrainConfig,
        args,
        arch_args=dict(args.arch_arg),
        data_options=data_options(args),
        tracking=from_args(TrackConfig, args),
    )


def post_train_config(args):
    """The PostTrainConfig of parsed `post-train` options; every value is checked here
    (ConfigError)."""

    if not args.checkpoint and not args.resume:
        raise ConfigError(
            "post-train needs a CHECKPOINT to start from (or --resume to continue a run)."
        )
    model_source(args)  # checks --arch-arg of a registry architecture and --key-map
    return from_args(
        PostTrainConfig,
        args,
        checkpoint=args.checkpoint or "",
        arch_args=dict(args.arch_arg),
        key_map=list(args.key_map),
        data_options=data_options(args),
        pof=from_args(PoFConfig, args),
        tracking=from_args(TrackConfig, args),
    )


def config_argv(cfg) -> list[str]:
    """The command line (after `python -m pof`, before --out) that makes `cfg`: a PretrainConfig's
    `pretrain ...` or a PostTrainConfig's `post-train CHECKPOINT ...`; what the app starts."""
    from .models.formats import ModelSource

    data = data_option_argv(cfg.data_options)
    if isinstance(cfg, PostTrainConfig):
        source = ModelSource(cfg.arch, cfg.arch_args, cfg.classifier, cfg.key_map, cfg.weights_key)
        flags = to_argv(
            cfg, exclude=("arch", "classifier", "weights_key")
        )  # model_source_argv gives those
        argv = [*flags, *to_argv(cfg.pof), *to_argv(cfg.tracking), *model_source_argv(source)]
        argv += data
        return ["post-train", str(cfg.checkpoint), *argv]
    model = model_source_argv(ModelSource(arch_args=cfg.arch_args))
    return ["pretrain", *to_argv(cfg), *to_argv(cfg.tracking), *model, *data]


def model_source_argv(source) -> list[str]:
    """--arch, --arch-arg, --classifier, --key-map and --weights-key that reproduce a
    pof.models.formats.ModelSource (the flags `add_model_args` parses; the registry's --arch-arg as
    well)."""
    argv = ["--arch", source.arch] if source.arch else []
    argv += [a for k, v in source.arch_args.items() for a in ("--arch-arg", f"{k}={json.dumps(v)}")]
    argv += ["--classifier", source.classifier] if source.classifier else []
    argv += [a for m in source.key_map for a in ("--key-map", m)]
    return argv + (["--weights-key", source.weights_key] if source.weights_key else [])


def data_option_argv(options: dict) -> list[str]:
    """--classes, --label-column, --mean, --std, --test-fraction and --split-seed that reproduce
    load_dataset's data options."""
    argv = []
    for key in ("classes", "label_column", "mean", "std", "test_fraction", "split_seed"):
        value = options.get(key)
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(map(str, value))
        argv += ["--" + key.replace("_", "-"), str(value)]
    return argv


def cmd_pretrain(args) -> int:
    cfg = pretrain_config(args)  # refused input is answered before torch is imported
    from .training.pretrain import pretrain

    update, close = _progress_bar(args.quiet)
    try:
        run = pretrain(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=update)
    finally:
        close()
    return _finish(run)


def _finish(run) -> int:
    status = run.status()
    if status["state"] == "cancelled":
        print(f"cancelled: {status.get('message', '')}", file=sys.stderr)
        return EXIT_CANCELLED
    last = run.epochs()[-1]
    print(
        f"done: test acc {last['test_acc']:.4f}, test loss {last['test_loss']:.4f}; "
        f"checkpoint {run.checkpoint('final')}"
    )
    _state_drawn_split(run.checkpoint("final"))
    return EXIT_OK


def _state_drawn_split(checkpoint) -> None:
    """Say so when the data's train/test split was drawn by the loader (a CSV without a split
    column): the checkpoint records it, so a resume or an analysis uses the same one."""
    from .models.metadata import read_metadata

    options = read_metadata(checkpoint).get("data_options") or {}
    if "test_fraction" in options:
        print(
            f"data: no split column, so {options['test_fraction']:g} of each class's rows were "
            f"held out for testing (stratified, seed {options.get('split_seed')}); recorded in "
            f"the checkpoint, so analyses and post-training of it use the same split"
        )


def cmd_post_train(args) -> int:
    cfg = post_train_config(args)  # refused input is answered before torch is imported
    from .training.posttrain import post_train

    main_rank = os.environ.get("RANK", "0") == "0"
    update, close = _progress_bar(args.quiet or not main_rank)
    try:
        run = post_train(
            cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=update
        )
    finally:
        close()
    return _finish(run) if main_rank else EXIT_OK


def cmd_evaluate(args) -> int:
    from .data.batches import Batches
    from .device import pick_device
    from .models.formats import CheckpointError
    from .models.loading import data_for, load_checkpoint
    from .training.evaluation import evaluate

    dataset = data_for(
        args.checkpoint, args.dataset, args.data_root, data_options(args), args.svhn_extra
    )
    model, meta = load_checkpoint(args.checkpoint, dataset=dataset, source=model_source(args))
    if meta["nonfinite"]:
        # Refused rather than printed with a warning: a NaN loss and a constant-argmax "accuracy"
        # look like numbers once copied into a table, and scripts read only the exit code.
        raise CheckpointError(
            f"{args.checkpoint} holds NaN or infinite weights in {len(meta['nonfinite'])} "
            f"tensor(s) ({', '.join(meta['nonfinite'][:5])}); its loss and accuracy are "
            f"meaningless. "
            f"Evaluate a checkpoint of an earlier epoch (e.g. RUN/checkpoints/best.safetensors)."
        )
    print_warnings(meta)
    device = pick_device(args.device)
    model.to(device)
    results = {}
    for split in ["test", "train"] if args.split == "both" else [args.split]:
        x, y = (
            (dataset.x_test, dataset.y_test)
            if split == "test"
            else (dataset.x_train, dataset.y_train)
        )
        batches = Batches(x, y, meta["mean"], meta["std"], 1024, device, shuffle=False)
        results[split] = evaluate(model, batches, dataset.num_classes)
    test = results.get("test")
    if test and (meta.get("provenance") or {}).get("kind") in ("foreign", "imported"):
        from .training.evaluation import chance_warning

        warning = chance_warning(test["acc"], 0.0, dataset.num_classes, dataset.name)
        if warning:  # a model of another origin that sees its data otherwise than in training
            print(f"warning: {warning}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {"checkpoint": args.checkpoint, "dataset": dataset.name, **results}, indent=1
            )
        )
        return EXIT_OK
    print(
        f"checkpoint  {args.checkpoint}\nmodel       {meta['arch']} {meta['arch_args']}\n"
        f"split       {meta['split']}\ndataset     {dataset.describe()}"
    )
    for split, r in results.items():
        print(f"{split:<5} loss {r['loss']:.4f}  accuracy {r['acc']:.4f}")
        per = "  ".join(
            f"{c}:{a:.3f}" for c, a in zip(dataset.classes, r["per_class_acc"], strict=True)
        )
        print(f"      per class  {per}")
    return EXIT_OK


def cmd_import(args) -> int:
    from .data.load import load_dataset
    from .models.loading import import_checkpoint

    options = data_options(args)
    dataset = load_dataset(args.dataset, args.data_root, svhn_extra=args.svhn_extra, **options)
    meta = import_checkpoint(
        args.checkpoint, args.out, dataset, model_source(args), options, args.overwrite
    )
    print_warnings(meta)
    print(
        f"{meta['arch']}: {meta['split']}\n"
        f"wrote {args.out}: every command and the app now take it without --arch or --dataset"
    )
    return EXIT_OK


def cmd_runs(args) -> int:
    from .runs.run import Run, RunError, list_runs, number_text

    if args.runs_command == "list":
        rows = [r.summary() for r in list_runs(args.root)]
        if args.json:
            print(json.dumps(rows, indent=1))
        elif not rows:
            print(f"no runs under {args.root}")
        for row in rows if not args.json else []:
            acc = f"{row['test_acc']:.4f}" if row["test_acc"] is not None else "-"
            what = (
                f"{row['model']} on {row['dataset']}"
                if row["state"] not in ("broken", "failed")
                else row["error"]
            )
            print(
                f"{row['run']:<40} {row['command']:<10} {row['state']:<10} {row['epochs']:>9} "
                f"test acc {acc}  {what}"
            )
        return EXIT_OK
    run = Run(args.run)
    # a job the app queued has a status but no config.json until it starts: it can be cancelled,
    # and cancelled again (the second answer says it already stopped)
    queued = args.runs_command == "cancel" and run.status_file.is_file()
    if not run.config_file.exists() and not queued:
        raise RunError(f"{args.run} is not a run folder (no config.json).")
    if args.runs_command == "cancel":
        state = run.status()["state"]
        if state not in ("queued", "running"):  # a dead job reads as failed: there is nobody to ask
            print(f"{run.path} is {state}: no job is running there, so there is nothing to cancel.")
            return EXIT_OK
        run.request_cancel()
        print(f"cancel requested; the job stops at its next step ({run.path / 'cancel'})")
        return EXIT_OK
    status, epochs = run.status(), run.epochs()
    if args.json:
        print(json.dumps({"config": run.config(), "status": status, "epochs": epochs}, indent=1))
        return EXIT_OK
    print(json.dumps(run.config(), indent=1))
    print(f"state: {status['state']}  progress: {number_text(status.get('progress', 0), '.1%')}")
    if status.get("error"):
        print(f"error: {status['error']}")
    for r in epochs:  # a record written by another version may lack a field: n/a, not a crash
        loss, acc = (number_text(r.get(k)) for k in ("train_loss", "train_acc"))
        train = f"train loss {loss} acc {acc}  " if "train_loss" in r else " " * 34
        loss, acc = (number_text(r.get(k)) for k in ("test_loss", "test_acc"))
        print(f"epoch {r['epoch']:>4}  {train}test loss {loss} acc {acc}")
    ckpts = sorted(p.name for p in run.checkpoints.glob("*.safetensors"))
    print("checkpoints: " + ", ".join(ckpts))
    return EXIT_OK


def input_errors() -> tuple:
    """The exceptions that mean "the input cannot work" (exit 2); anything else is a failure or a
    bug."""
    from .models.formats import CheckpointError
    from .models.registry import ArchError
    from .runs.run import RunError

    return CheckpointError, DatasetError, RunError, ConfigError, ArchError


def run_command(handler, args, run_dir=None) -> int:
    """Call a command and turn its outcome into an exit code and at most a paragraph on stderr:
    input errors exit 2 with their message; a diverged run 1; Ctrl-C 3; a file-system error 1 with
    its message; anything else is a bug: 1, one line here and the traceback in RUN/log.txt (the
    run folder `run_dir`, if it holds a run), or on the terminal with POF_DEBUG=1."""
    try:
        return handler(args)
    except Diverged as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_FAILED
    except input_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        _fail_queued(run_dir, str(e), marked(e))
        return EXIT_BAD_INPUT
    except (KeyboardInterrupt, Stopped):
        print("interrupted; resume with --resume" if run_dir else "interrupted", file=sys.stderr)
        _cancel_own(run_dir)
        return EXIT_CANCELLED
    # disk full, permissions changed mid-run ...: the machine's, not the input's
    except OSError as e:
        where = _log_traceback(run_dir)
        print(
            f"error: {e} (a file could not be read or written; check free space and "
            f"permissions){where}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as e:
        where = _log_traceback(run_dir)
        summary = " ".join(str(e).split())[:300]
        print(
            f"error: unexpected {type(e).__name__}: {summary} — this is a bug{where}",
            file=sys.stderr,
        )
        _fail_queued(run_dir, f"unexpected {type(e).__name__}: {summary}")
        return EXIT_FAILED


def _cancel_own(run_dir) -> None:
    """Interrupted before the training loop took charge (loading data, building the model): a
    folder this process holds must not read "running" with a dead pid."""
    if run_dir is None:
        return
    from .runs.run import Run

    run = Run(run_dir)
    status = run.status()
    if status.get("state") in ("queued", "running") and status.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            run.set_status("cancelled", message="interrupted; resume with --resume")


def _fail_queued(run_dir, message: str, marks: str | None = None) -> None:
    """The app's queue (pof.runs.jobqueue) marks a folder queued under this very pid, then execs the
    command: if the command refuses before it creates the run, say why in the folder, so the app
    shows the reason instead of "stopped without reporting". A message that marks what to give
    (pof.hints) keeps its marks in error_marked, for the app to word in its own fields."""
    if run_dir is None:
        return
    from .runs.run import Run

    run = Run(run_dir)
    status = run.status()
    if status.get("state") == "queued" and status.get("pid") == os.getpid():
        with contextlib.suppress(OSError):
            extra = {"error_marked": marks} if marks and marks != message else {}
            run.set_status("failed", error=message, **extra)


def _log_traceback(run_dir) -> str:
    """Where the traceback went, as the end of the one-line summary."""
    text = traceback.format_exc()
    if os.environ.get("POF_DEBUG"):
        print(text, file=sys.stderr, end="")
        return ""
    try:
        has_run = run_dir is not None and (Path(run_dir) / "status.json").is_file()
    except OSError:  # e.g. a name too long for the file system
        has_run = False
    if has_run:
        log = Path(run_dir) / "log.txt"
        try:
            with open(log, "a") as f:
                f.write(text)
            return f"; the full traceback is in {log}"
        except OSError:
            pass
    return "; set POF_DEBUG=1 to print the full traceback"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse refuses unknown options itself, with exit 2
    handlers = {
        "pretrain": cmd_pretrain,
        "post-train": cmd_post_train,
        "evaluate": cmd_evaluate,
        "import": cmd_import,
        "runs": cmd_runs,
    }
    run_dir = args.out if args.command in ("pretrain", "post-train") else None
    stop_on_sigterm()
    return run_command(handlers[args.command], args, run_dir)
