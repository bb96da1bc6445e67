"""Hostile input to every command, for real: each bad option, file or folder is built by the test,
the command runs, and the outcome is asserted: exit code, a message that names the problem (never a
traceback), and no folder left behind / no file changed.

Each command runs as a real subprocess (`run_cli`, `run_analysis`) in at least one test of each
kind, and wherever it refuses before importing torch (0.1 s). A refusal that comes after the import
(1-3 s in a fresh process) runs the same entry in this process instead (the `pof_main` and
`analysis_main` fixtures, conftest.main_in_process), with the same assertions."""

import contextlib
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import save_file

from pof.config import PretrainConfig
from pof.runs.run import Run
from pof.training.pretrain import pretrain


def run_analysis(*args, **kw):
    env = {**os.environ, **kw.pop("env", {})}
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def refused(proc, *words, code=2):
    """Exit `code`, a one-paragraph `error:` message holding `words`, no traceback."""
    err = proc.stderr
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{err}"
    assert "Traceback" not in err and "error: " in err, err
    for w in words:
        assert w in err, (w, err)
    return err


def sha(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    run = pretrain(PretrainConfig(model="mlp", dataset="digits", epochs=1), root / "run")
    return run.checkpoint("final")


def _meta_and_state(path):
    with safe_open(str(path), "pt") as f:
        return json.loads(f.metadata()["pof"]), {k: f.get_tensor(k) for k in list(f.keys())}


@pytest.fixture(scope="module")
def nan_ckpt(ckpt, tmp_path_factory):
    meta, state = _meta_and_state(ckpt)
    state["classifier.bias"] = torch.full_like(state["classifier.bias"], float("nan"))
    path = tmp_path_factory.mktemp("nan") / "nan.safetensors"
    save_file(state, str(path), metadata={"pof": json.dumps(meta)})
    return path


# --- options out of range: refused before any folder exists ------------------------------------

PRETRAIN_BAD = [
    (["--epochs", "0"], "epochs must be an integer >= 1"),
    (["--epochs", "-1"], "epochs must be an integer >= 1"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--lr", "nan"], "lr must be a finite number > 0"),
    (["--lr", "-1"], "lr must be a finite number > 0"),
    (["--lr", "inf"], "lr must be a finite number > 0"),
    (["--lr", "1e300"], "lr must be a finite number > 0 and <= 1e+12"),
    (["--augment", "bogus"], "Bad augmentation 'bogus'"),
    (["--augment", "crop=99999"], "crop=99999 is larger than any image"),
    (["--rho", "-1"], "rho (the SAM radius) must be"),
    (["--momentum", "1"], "momentum must be a finite number >= 0 and < 1"),
    (["--weight-decay", "-0.1"], "weight_decay must be"),
    (["--lr-decay", "0"], "lr_decay must be"),
    (["--milestones", "0", "5"], "milestones (epochs at which the rate decays)"),
    (["--seed", "-1"], "seed must be an integer >= 0"),
    (["--save-every", "-2"], "save_every"),
    (["--model", "cnn-small", "--arch-arg", "width=-1"], "width=-1: give positive integers"),
    (["--model", "cnn-small", "--arch-arg", "width=100000"], "GiB but this machine has"),
    (
        ["--model", "mlp", "--arch-arg", "width=3"],
        "unknown argument(s) width; this architecture takes: hidden",
    ),
    (["--model", "mlp", "--arch-arg", "hidden=[64,0]"], "give positive integers"),
    (["--device", "cuda:99"], "device 'cuda:99'"),
    (["--device", "banana"], "is not a device name"),
    (["--dataset", "nosuch"], "nosuch"),
]


# answered once torch is imported (device, dataset, the memory a model needs): in this process
PRETRAIN_AFTER_TORCH = {
    "--model cnn-small --arch-arg width=100000",
    "--device cuda:99",
    "--device banana",
    "--dataset nosuch",
}


@pytest.mark.parametrize("extra,message", PRETRAIN_BAD, ids=[" ".join(a) for a, _ in PRETRAIN_BAD])
def test_pretrain_refuses_bad_options_before_making_a_folder(tmp_path, pof_main, extra, message):
    out = tmp_path / "run"
    cli = pof_main if " ".join(extra) in PRETRAIN_AFTER_TORCH else run_cli
    refused(
        cli(
            "pretrain",
            "--model",
            "mlp",
            "--dataset",
            "digits",
            "--epochs",
            "1",
            "--out",
            out,
            "--quiet",
            *extra,
        ),
        message,
    )
    assert not out.exists()


POST_BAD = [
    (["--weak-batch-size", "0"], "weak_batch_size must be an integer >= 1"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1"),
    (["--epochs", "0"], "epochs must be"),
    (["--lr", "nan"], "lr must be a finite number > 0"),
    (["--rho", "-1"], "rho (the SAM radius)"),
    (["--num-partitions", "0"], "num_partitions must be"),
    (["--gamma-max", "-1"], "gamma_max must be"),
    (["--line-search-init-lr", "0"], "line_search_init_lr must be"),
    (
        ["--line-search-max-lr", "1e300", "--line-search-init-lr", "1e-300"],
        "more than 60 doublings",
    ),
    (["--augment", "flip,crop=x"], "Bad augmentation"),
    (["--arch", "cnn-small", "--arch-arg", "width=-1"], "width=-1"),
    (["--key-map", "nokey"], "--key-map 'nokey'"),
]


@pytest.mark.parametrize("extra,message", POST_BAD, ids=[" ".join(a) for a, _ in POST_BAD])
def test_post_train_refuses_bad_options_before_making_a_folder(ckpt, tmp_path, extra, message):
    out = tmp_path / "post"
    refused(run_cli("post-train", ckpt, "--epochs", "1", "--out", out, "--quiet", *extra), message)
    assert not out.exists()


def test_post_train_without_a_checkpoint_is_input_error(tmp_path, pof_main):
    refused(run_cli("post-train", "--out", tmp_path / "p"), "needs a CHECKPOINT")
    refused(
        pof_main("post-train", tmp_path / "missing.safetensors", "--out", tmp_path / "p"),
        "missing.safetensors",
    )
    assert not (tmp_path / "p").exists()


# --- output paths that cannot be written ----------------------------------------------------------


def test_output_paths_that_are_files_or_unwritable_are_refused(
    ckpt, tmp_path, pof_main, analysis_main
):
    a_file = tmp_path / "file.txt"
    a_file.write_text("mine")
    for out in (a_file, a_file / "below"):
        # each command line once for real, then in this process (they import torch first)
        pof, analysis = (run_cli, run_analysis) if out == a_file else (pof_main, analysis_main)
        refused(pof("pretrain", "--model", "mlp", "--epochs", "1", "--out", out), "give")
        refused(pof("post-train", ckpt, "--epochs", "1", "--out", out), "give")
        refused(analysis("hessian", ckpt, "--out", out, "--quiet"), "give")
        refused(analysis_main("compare", ckpt, "--part", "layers", "--out", out, "--quiet"), "give")
    assert a_file.read_text() == "mine"
    # a folder nothing can be created in, even by root: /sys; else one read-only for other users
    if os.getuid() == 0:
        ro = Path("/sys/pof-fault-test")
    else:
        (tmp_path / "ro").mkdir(mode=0o555)
        ro = tmp_path / "ro" / "out"
    refused(pof_main("pretrain", "--model", "mlp", "--epochs", "1", "--out", ro), "cannot write in")
    refused(analysis_main("landscape", ckpt, "--out", ro, "--quiet"), "cannot write in")
    assert not ro.exists()


# --- models that are not usable -------------------------------------------------------------------


def test_a_nan_checkpoint_is_refused_by_evaluate_analysis_and_post_train(
    nan_ckpt, tmp_path, pof_main, analysis_main
):
    # evaluate and compare (which fails the folder it made) for real, the others in this process
    refused(run_cli("evaluate", nan_ckpt), "NaN or infinite weights", "classifier.bias")
    for cmd in ("hessian", "landscape", "sharpness", "layers"):
        refused(
            analysis_main(cmd, nan_ckpt, "--out", tmp_path / cmd, "--quiet"),
            "NaN or infinite",
            "classifier.bias",
        )
        assert not list((tmp_path / cmd).glob("*.json")) if (tmp_path / cmd).exists() else True
    refused(
        pof_main("post-train", nan_ckpt, "--out", tmp_path / "post", "--epochs", "1"),
        "NaN or infinite",
    )
    assert not (tmp_path / "post").exists()
    proc = run_analysis(
        "compare", nan_ckpt, "--part", "hessian", "--out", tmp_path / "cmp", "--quiet"
    )
    refused(proc, "NaN or infinite weights")
    assert Run(tmp_path / "cmp" / "hessian").status()["state"] == "failed"  # the app shows why


META_BAD = {
    "a JSON list": (lambda m: [1, 2], "not an object"),
    "a JSON string": (lambda m: "model", "not an object"),
    "num_classes as text": (lambda m: {**m, "num_classes": "10"}, "'num_classes'"),
    "num_classes negative": (lambda m: {**m, "num_classes": -3}, "'num_classes'"),
    "null normalization": (lambda m: {**m, "mean": None}, "'mean'"),
    "text normalization": (lambda m: {**m, "std": ["x"]}, "'std'"),
    "zero std": (lambda m: {**m, "std": [0.0]}, "positive"),
    "negative input shape": (lambda m: {**m, "input_shape": [-1, 8, 8]}, "'input_shape'"),
    "negative width": (lambda m: {**m, "arch_args": {"hidden": [-1]}}, "cannot build mlp"),
    "provenance a list": (lambda m: {**m, "provenance": [1]}, "'provenance'"),
    "data options a string": (lambda m: {**m, "data_options": "x"}, "'data_options'"),
    "dataset a number": (lambda m: {**m, "dataset": 7}, "'dataset'"),
    "class names too few": (lambda m: {**m, "class_names": ["a"]}, "'class_names'"),
    "arch unknown": (lambda m: {**m, "arch": "vgg"}, "vgg"),
}


@pytest.mark.parametrize("case", list(META_BAD))
def test_metadata_of_the_wrong_json_type_is_a_clear_refusal(ckpt, tmp_path, pof_main, case):
    make, message = META_BAD[case]
    meta, state = _meta_and_state(ckpt)
    path = tmp_path / "crafted.safetensors"
    save_file(state, str(path), metadata={"pof": json.dumps(make(meta))})
    cli = run_cli if case == next(iter(META_BAD)) else pof_main  # the first for real
    refused(cli("evaluate", path, "--dataset", "digits"), message)


def test_unreadable_training_schedule_asks_for_lr_before_making_a_folder(ckpt, tmp_path, pof_main):
    meta, state = _meta_and_state(ckpt)
    meta["provenance"] = {"schedule": {"type": "step", "lr": "fast"}}
    path = tmp_path / "sched.safetensors"
    save_file(state, str(path), metadata={"pof": json.dumps(meta)})
    refused(
        pof_main("post-train", path, "--out", tmp_path / "p", "--epochs", "1"),
        "give the learning rate with --lr",
    )
    assert not (tmp_path / "p").exists()


# --- grids ----------------------------------------------------------------------------------------

GRID_BAD = [
    (["landscape", "--dims", "2", "--steps", "100000"], "1e+10 grid points"),
    (["landscape", "--steps", "1"], "--steps must be an integer >= 2"),
    (["landscape", "--steps", "0"], "--steps must be an integer >= 2"),
    (["landscape", "--range", "1", "1"], "LO must be below HI"),
    (["landscape", "--range", "nan", "1"], "--range LO must be a finite number"),
    (["interpolate", "CKPT", "--steps", "-3"], "--steps must be an integer >= 2"),
    (["hessian", "--top-k", "0"], "top_k must be"),
    (["hessian", "--density-steps", "1000000"], "at most 2000"),
    (["hessian", "--tol", "nan"], "tol must be"),
    (["hessian", "--samples", "0"], "--samples must be"),
    (["sharpness", "--rho", "-1"], "--rho must be"),
    (["layers", "--probes", "1"], "two for a standard error"),
    (["compare", "--steps-2d", "100000"], "1e+10 grid points"),
    (["compare", "--steps-1d", "1"], "steps_1d must be an integer >= 2"),
    (["compare", "--span", "0"], "span must be"),
]


# for real: the first case of each command that no other test of this file runs as a subprocess
GRID_REAL = {
    "landscape --dims 2 --steps 100000",
    "interpolate CKPT --steps -3",
    "sharpness --rho -1",
    "layers --probes 1",
}


@pytest.mark.parametrize("args,message", GRID_BAD, ids=[" ".join(a) for a, _ in GRID_BAD])
def test_analysis_refuses_degenerate_and_absurd_sizes_before_any_work(
    ckpt, tmp_path, analysis_main, args, message
):
    cmd, rest = args[0], [str(ckpt) if a == "CKPT" else a for a in args[1:]]
    out = tmp_path / "results"
    cli = run_analysis if " ".join(args) in GRID_REAL else analysis_main
    refused(cli(cmd, ckpt, *rest, "--out", out, "--quiet"), message)
    assert not out.exists()


def test_report_of_a_folder_that_is_not_a_run(tmp_path):
    refused(run_analysis("report", tmp_path / "nothing", "--part", "layers"), "is not a run folder")
    assert not (tmp_path / "nothing").exists()


# --- run folders ----------------------------------------------------------------------------------


def test_overwrite_onto_the_run_holding_the_source_checkpoint_deletes_nothing(tmp_path, pof_main):
    src = pretrain(PretrainConfig(model="mlp", dataset="digits", epochs=1), tmp_path / "src")
    before = {p.name: sha(p) for p in src.checkpoints.glob("*")}
    for out in (src.path, tmp_path):  # the run itself, and a folder that contains it
        cli = run_cli if out == src.path else pof_main  # the second in this process
        refused(
            cli(
                "post-train", src.checkpoint("final"), "--out", out, "--overwrite", "--epochs", "1"
            ),
            "would delete the checkpoint it starts from",
        )
    assert {p.name: sha(p) for p in src.checkpoints.glob("*")} == before
    assert Run(src.path).status()["state"] == "done"


CORRUPT_CONFIGS = [
    "{truncated",
    "[1, 2]",
    '{"command": "pretrain", "config": {"epochs": "ten"}}',
    '{"command": "pretrain", "config": {"epochs": 2, "bogus": 1}}',
    '{"command": "pretrain", "config": [1]}',
]


@pytest.mark.parametrize("config", CORRUPT_CONFIGS)
def test_resume_of_a_corrupt_or_wrong_typed_config_is_refused(tmp_path, pof_main, config):
    out = tmp_path / "r"
    pretrain(PretrainConfig(model="mlp", dataset="digits", epochs=1), out)
    Run(out).set_status("failed", error="pretend it crashed")
    (out / "config.json").write_text(config)
    files = {p: sha(p) for p in out.rglob("*") if p.is_file() and p.name != "status.json"}
    cli = run_cli if config == CORRUPT_CONFIGS[0] else pof_main  # the first for real
    err = refused(cli("pretrain", "--out", out, "--resume"), "config.json")
    assert len(err.strip().splitlines()) == 1
    err = refused(
        cli("post-train", "--out", out, "--resume")
    )  # the file named, or "a pretrain run"
    assert "config.json" in err or "not a post-train run" in err
    assert {p: sha(p) for p in out.rglob("*") if p.is_file() and p.name != "status.json"} == files


def test_runs_show_of_a_folder_that_is_not_a_run_is_input_error(tmp_path):
    refused(run_cli("runs", "show", tmp_path), "is not a run folder")


# --- unexpected errors: one line, exit 1, the traceback kept --------------------------------------


def test_an_unexpected_error_prints_one_line_and_keeps_the_traceback(tmp_path, capsys, monkeypatch):
    from pof.cli import run_command

    def bug(args):
        return {}["missing"] if args else None.attribute

    monkeypatch.delenv("POF_DEBUG", raising=False)
    assert run_command(bug, None) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected AttributeError" in err and "this is a bug" in err
    assert "POF_DEBUG=1" in err and "Traceback" not in err
    run = Run.create(tmp_path / "r", {"command": "pretrain"})
    assert run_command(bug, True, run.path) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1 and "unexpected KeyError" in err and str(run.path / "log.txt") in err
    )
    assert "Traceback" in (run.path / "log.txt").read_text() and "def bug" not in err
    monkeypatch.setenv("POF_DEBUG", "1")
    assert run_command(bug, None) == 1
    assert "Traceback" in capsys.readouterr().err
    # a bug's ValueError is not mistaken for bad input any more
    monkeypatch.delenv("POF_DEBUG")
    assert run_command(lambda a: int("x"), None) == 1
    assert "unexpected ValueError" in capsys.readouterr().err
    from analysis.cli import main as analysis_main

    assert (
        analysis_main(
            [
                "landscape",
                str(tmp_path / "none.safetensors"),
                "--out",
                str(tmp_path / "o"),
                "--quiet",
            ]
        )
        == 2
    )


def test_a_file_system_error_mid_run_is_exit_1_not_blamed_on_the_input(capsys):
    from pof.cli import run_command

    def full_disk(args):
        raise OSError(28, "No space left on device")

    assert run_command(full_disk, None) == 1
    err = capsys.readouterr().err
    assert "No space left" in err and "this is a bug" not in err


# --- property-based: option parsing never crashes -------------------------------------------------


def _input_errors():
    from pof.cli import input_errors

    return input_errors()


VALUES = st.one_of(
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "-0",
            "1e309",
            "0x10",
            "",
            " ",
            "1_000",
            "true",
            "[1]",
            "{}",
            "null",
            "-",
            "--",
            "crop=4,flip",
            "none",
            "cpu",
            "auto",
        ]
    ),
    st.text(max_size=12),
)
PRETRAIN_OPTS = [
    "--epochs",
    "--batch-size",
    "--lr",
    "--momentum",
    "--weight-decay",
    "--lr-decay",
    "--rho",
    "--seed",
    "--save-every",
    "--augment",
    "--device",
    "--schedule",
    "--optimizer",
    "--milestones",
    "--model",
    "--arch-arg",
    "--mean",
    "--std",
    "--classes",
]
POST_OPTS = [
    "--epochs",
    "--batch-size",
    "--lr",
    "--momentum",
    "--weight-decay",
    "--rho",
    "--weak-batch-size",
    "--line-search-init-lr",
    "--line-search-max-lr",
    "--num-partitions",
    "--gamma-max",
    "--weak-bn-mode",
    "--rejection-cap",
    "--augment",
    "--seed",
    "--device",
    "--save-every",
    "--method",
    "--arch",
    "--arch-arg",
    "--key-map",
]
ANALYSIS = {
    "hessian": [
        "--top-k",
        "--tol",
        "--probes",
        "--density-steps",
        "--density-runs",
        "--samples",
        "--seed",
        "--batch-size",
        "--device",
    ],
    "landscape": ["--steps", "--dims", "--samples", "--normalization", "--seed", "--batch-size"],
    "interpolate": ["--steps", "--samples"],
    "sharpness": ["--rho", "--steps", "--sigma", "--noise-samples"],
    "layers": ["--probes", "--tol", "--max-steps"],
    "compare": [
        "--samples",
        "--top-k",
        "--probes",
        "--density-steps",
        "--eval-samples",
        "--steps-1d",
        "--steps-2d",
        "--span",
        "--layer-tol",
        "--layer-steps",
        "--seed",
    ],
}


def _parse(parser, argv):
    """Parsed options, or None when argparse refused them (exit 2 with its own message)."""
    try:
        return parser.parse_args(argv)
    except SystemExit as e:
        assert e.code == 2
        return None


def _parse_random(parser, argv: list[str], opts, tmp_path, capsys):
    """argv with the drawn (option, value) pairs and an --out, parsed; None where argparse refused
    it."""
    for opt, value in opts:
        argv = [*argv, opt, value]
    args = _parse(parser, [*argv, "--out", str(tmp_path / "o")])
    capsys.readouterr()
    return args


@settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    opts=st.lists(st.tuples(st.sampled_from(PRETRAIN_OPTS + POST_OPTS), VALUES), max_size=4),
    post=st.booleans(),
)
def test_random_pof_options_give_a_config_or_a_documented_input_error(opts, post, tmp_path, capsys):
    from pof.cli import build_parser, post_train_config, pretrain_config

    args = _parse_random(
        build_parser(),
        ["post-train", "ck.safetensors"] if post else ["pretrain"],
        opts,
        tmp_path,
        capsys,
    )
    try:
        if args is not None:
            (post_train_config if post else pretrain_config)(args)
    except _input_errors():
        pass


@settings(
    max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cmd=st.sampled_from(list(ANALYSIS)), data=st.data())
def test_random_analysis_options_pass_or_are_refused_as_input(cmd, data, tmp_path, capsys):
    from analysis.cli import build_parser, check_options

    opts = data.draw(st.lists(st.tuples(st.sampled_from(ANALYSIS[cmd]), VALUES), max_size=4))
    args = _parse_random(
        build_parser(),
        [cmd, "a.safetensors"] + (["b.safetensors"] if cmd == "interpolate" else []),
        opts,
        tmp_path,
        capsys,
    )
    try:
        if args is not None:
            check_options(args)
    except _input_errors():
        pass


FIELD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(-5, 5), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(-3, 3), max_size=2),
)


@settings(max_examples=300, deadline=2000)
@given(data=st.data())
def test_library_configs_take_any_field_value_or_raise_config_error(data):
    """A notebook (or the app) building a config with any JSON-ish value gets a ConfigError,
    nothing else."""
    from dataclasses import fields

    from analysis.compare import ReportConfig
    from pof.config import PoFConfig, PostTrainConfig
    from pof.validate import ConfigError

    cls = data.draw(st.sampled_from([PretrainConfig, PostTrainConfig, PoFConfig, ReportConfig]))
    names = data.draw(
        st.lists(st.sampled_from([f.name for f in fields(cls)]), max_size=3, unique=True)
    )
    kwargs = {n: data.draw(FIELD_VALUES) for n in names}
    with contextlib.suppress(ConfigError):
        cls(**kwargs)


def test_labels_given_by_the_user_are_kept_whole():
    from analysis.compare import labels_for

    paths = ["/a/x.safetensors", "/b/y.pt"]
    assert list(labels_for(paths, ["SAM rho=0.05", "SGD lr=0.1"])) == ["SAM rho=0.05", "SGD lr=0.1"]
    assert list(labels_for(["/a/v1.2.safetensors", "/b/v1.3.safetensors"])) == ["v1.2", "v1.3"]
    assert list(labels_for(["/a/m.safetensors", "/b/m.safetensors"])) == ["a/m", "b/m"]


def test_an_output_name_too_long_for_the_file_system_is_input_not_a_crash(tmp_path):
    out = tmp_path / ("a" * 300)
    refused(
        run_cli("pretrain", "--model", "mlp", "--dataset", "moons", "--epochs", "1", "--out", out),
        "give a shorter",
    )
    assert os.listdir(tmp_path) == []  # (out.exists() itself fails on such a name)
