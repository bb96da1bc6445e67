"""Hostile inputs, round two: odd files, absurd values, a queued job cancelled, resume from
anywhere, user code that is not a model factory. Real files, real subprocesses; each must end with
the documented exit code, a message and no traceback, and leave nothing behind.

A refusal that a real subprocess of the same command already shows, and that cannot hang or exhaust
memory if the code is wrong, runs the same entry in this process instead (the `pof_main` and
`analysis_main` fixtures, conftest.main_in_process): no 1-3 s of Python and torch to start. A FIFO
or /dev/zero as input stays in a subprocess, whose timeout fails a reader that waits forever."""

import functools
import os
import socket
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli

DIGITS = ROOT / "assets" / "digits-cnn-small-sgd.safetensors"


def analysis_cli(*args, timeout=300):
    """`python -m analysis ...` as a real subprocess."""
    cmd = [sys.executable, "-m", "analysis", *map(str, args)]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def _refused(proc, *words) -> None:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and all(w in proc.stderr for w in words), proc.stderr


@pytest.fixture
def odd_files(tmp_path):
    """A FIFO, a socket, a folder and a character device, each named like a model file."""
    os.mkfifo(tmp_path / "fifo.safetensors")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.safetensors"))
    (tmp_path / "dir.safetensors").mkdir()
    yield {
        "a FIFO (named pipe)": tmp_path / "fifo.safetensors",
        "a socket": tmp_path / "sock.safetensors",
        "a folder": tmp_path / "dir.safetensors",
        "a character device": "/dev/zero",
    }
    sock.close()


def test_a_fifo_socket_folder_or_device_as_a_checkpoint_is_refused_by_its_type(
    tmp_path, odd_files, pof_main, analysis_main
):
    for kind, path in odd_files.items():
        out = tmp_path / "out"
        if kind in ("a socket", "a folder"):  # nothing a reader could wait on: in this process
            evaluate = pof_main("evaluate", path, "--dataset", "digits")
            hessian = analysis_main("hessian", path, "--out", out)
        else:  # a reader that opened the FIFO would wait for a writer forever, one of /dev/zero
            # would fill the memory: in a subprocess, whose timeout fails it
            evaluate = run_cli("evaluate", path, "--dataset", "digits", timeout=120)
            hessian = analysis_cli("hessian", path, "--out", out, timeout=120)
        _refused(evaluate, str(path), kind)
        _refused(hessian, str(path), kind)
        if kind.startswith("a FIFO"):
            _refused(run_cli("post-train", path, "--out", out, timeout=120), str(path), kind)
        assert not out.exists()


def test_a_fifo_as_a_data_file_or_an_image_is_refused_by_its_type(tmp_path):
    os.mkfifo(tmp_path / "d.npz")
    os.mkfifo(tmp_path / "d.csv")
    for split in ("train", "test"):
        (tmp_path / "img" / split / "a").mkdir(parents=True)
    os.mkfifo(tmp_path / "img" / "train" / "a" / "x.png")
    for spec in ("npz:" + str(tmp_path / "d.npz"), "csv:" + str(tmp_path / "d.csv")):
        proc = run_cli("evaluate", DIGITS, "--dataset", spec, timeout=120)
        _refused(proc, "a FIFO (named pipe), not a file")
    out = tmp_path / "r"
    proc = run_cli("pretrain", "--dataset", f"imagefolder:{tmp_path / 'img'}", "--out", out)
    _refused(proc, "x.png is a FIFO")
    assert not out.exists()


@pytest.mark.parametrize(
    "argv, words",
    [
        (["pretrain", "--epochs", "100000000"], "epochs is 100,000,000: no run would ever finish"),
        (["pretrain", "--batch-size", "1000000000"], "batch_size is 1,000,000,000"),
        (["post-train", DIGITS, "--epochs", "100000000"], "use at most 100,000"),
        (["post-train", DIGITS, "--batch-size", "1000000000"], "use at most 65,536"),
        (["post-train", DIGITS, "--weak-batch-size", "1000000000"], "weak_batch_size is 1,0"),
        (["pretrain", "--epochs", "5", "--milestones", "3", "300"], "300 lie beyond the last"),
        (["post-train", DIGITS, "--num-partitions", "1000000000"], "use at most 100000"),
        (["post-train", DIGITS, "--gamma-max", "nan"], "gamma_max must be a finite number"),
        (["post-train", DIGITS, "--rejection-cap", "1e400"], "rejection_cap must be a finite"),
        (["post-train", DIGITS, "--line-search-max-lr", "1e300"], "more than 60 doublings"),
        (["pretrain", "--arch-arg", "width=99999999999"], "far beyond what fits in memory"),
    ],
    ids=[
        "epochs",
        "batch",
        "post-epochs",
        "post-batch",
        "weak-batch",
        "milestones",
        "partitions",
        "gamma-nan",
        "cap-inf",
        "line-search",
        "width",
    ],
)
def test_absurd_sizes_are_refused_before_any_folder(tmp_path, argv, words):
    out = tmp_path / "r"
    _refused(run_cli(*argv, "--dataset", "digits", "--out", out, timeout=120), words)
    assert not out.exists()


def test_samples_beyond_the_data_are_clamped_and_said(tmp_path):
    proc = analysis_cli(
        "hessian", DIGITS, "--samples", "100000000", "--top-k", "1", "--out", tmp_path / "h"
    )
    assert proc.returncode == 0, proc.stderr
    assert "1347 of 1347 images (all: 100,000,000 were asked for)" in proc.stdout


def _queued_pretrain(root, name, epochs):
    from app.jobs import start_job

    argv = ["pretrain", "--dataset", "moons", "--model", "mlp", "--epochs", str(epochs)]
    return start_job(root / name, ["-m", "pof", *argv, "--out", str(root / name), "--quiet"], root)


def test_runs_cancel_stops_a_job_the_app_queued_and_a_second_cancel_is_harmless(tmp_path):
    from conftest import wait_for_state

    from pof.runs.run import Run

    root = tmp_path / "runs"
    first = _queued_pretrain(root, "long", 5000)
    wait_for_state(Run(root / "long"), ("running",))
    waiting = _queued_pretrain(root, "waiting", 2)
    assert wait_for_state(Run(root / "waiting"), ("queued",))["pid"] == waiting.pid
    assert not (root / "waiting" / "config.json").exists()  # its command has not started
    for _ in range(2):  # twice, as an impatient user does
        proc = run_cli("runs", "cancel", root / "waiting", check=0)
        assert "cancel requested" in proc.stdout or "cancelled" in proc.stdout
    assert waiting.wait(timeout=60) == 3
    status = Run(root / "waiting").status()
    assert status["state"] == "cancelled" and "queue" in status["error"]
    assert not (root / "waiting" / "config.json").exists()  # it never ran
    run_cli("runs", "cancel", root / "long", check=0)
    run_cli("runs", "cancel", root / "long", check=0)
    assert first.wait(timeout=120) == 3
    assert Run(root / "long").status()["state"] == "cancelled"


STDLIB_TARGETS = ["os:system", "subprocess:getoutput", "builtins:exec", "mymod:system"]


def _state_dict_and_marker(tmp_path):
    import torch

    torch.save({"fc.weight": torch.zeros(10, 64)}, tmp_path / "sd.pt")
    (tmp_path / "mymod.py").write_text("from os import system  # re-exported: still refused\n")
    return tmp_path / "sd.pt", tmp_path / "MARKER"


def test_a_standard_library_callable_as_architecture_runs_nothing_on_the_command_line(
    tmp_path, monkeypatch, pof_main
):
    sd, marker = _state_dict_and_marker(tmp_path)
    targets = [*STDLIB_TARGETS, f"{os.__file__}:system"]
    for target in targets:
        args = ["evaluate", sd, "--dataset", "digits"]
        args += ["--arch", target, "--arch-arg", f"command=touch {marker}"]
        args += [
            "--arch-arg",
            f"cmd=touch {marker}",
            "--arch-arg",
            f"source=open({str(marker)!r}, 'w')",
        ]
        if target == STDLIB_TARGETS[0]:  # for real, from the user's folder
            env = {**os.environ, "PYTHONPATH": f"{ROOT}:{tmp_path}"}
            proc = subprocess.run(
                list(map(str, [sys.executable, "-m", "pof", *args])),
                cwd=tmp_path,
                env=env,
                capture_output=True,
                text=True,
            )
        else:  # the same in this process: the user's folder first on the path, as `-m` puts it
            with monkeypatch.context() as m:
                m.syspath_prepend(str(tmp_path))
                proc = pof_main(*args, cwd=tmp_path)
        _refused(proc, target, "standard library", "refused")
        assert not marker.exists()


def test_a_standard_library_callable_as_architecture_runs_nothing_in_the_shared_loader(
    tmp_path, monkeypatch
):
    from pof.data.load import load_dataset
    from pof.models.formats import CheckpointError, ModelSource
    from pof.models.loading import load_checkpoint

    sd, marker = _state_dict_and_marker(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))  # mymod importable, as from the user's folder
    digits = load_dataset("digits")
    for target in STDLIB_TARGETS:
        source = ModelSource(arch=target, arch_args={"command": f"touch {marker}"})
        with pytest.raises(CheckpointError, match=r"standard library.*refused"):
            load_checkpoint(sd, dataset=digits, source=source)
        assert not marker.exists()


def test_resume_works_from_any_folder_and_refuses_a_moved_or_changed_checkpoint(tmp_path, pof_main):
    import shutil

    from interrupt import _child, wait_for_file

    from pof.runs.run import Run

    src, out, held = tmp_path / "src", tmp_path / "r", tmp_path / "held"
    src.mkdir()
    shutil.copy(DIGITS, src / "m.safetensors")
    argv = ["post-train", "m.safetensors", "--epochs", "2", "--batch-size", "64", "--quiet"]
    # started with a relative path from its own folder, held in epoch 2 and cancelled there
    proc = subprocess.Popen(
        _child("hold", 22 + 3, held, [*argv, "--out", out]), cwd=src, stderr=subprocess.PIPE
    )
    wait_for_file(held, proc)
    run_cli("runs", "cancel", out, check=0)
    assert proc.wait(timeout=120) == 3
    shutil.copy(ROOT / "assets" / "digits-cnn-small-sam.safetensors", src / "m.safetensors")
    # the refusals in this process (post-train's refusals run for real elsewhere)
    _refused(pof_main("post-train", "--out", out, "--resume"), "has changed since", "m.safetensors")
    shutil.copy(DIGITS, src / "m.safetensors")
    (src / "m.safetensors").rename(tmp_path / "moved.safetensors")
    _refused(pof_main("post-train", "--out", out, "--resume"), "no longer there", "m.safetensors")
    assert Run(out).status()["state"] == "cancelled"  # the refusals changed nothing
    (tmp_path / "moved.safetensors").rename(src / "m.safetensors")
    run_cli("post-train", "--out", out, "--resume", "--quiet", check=0)  # from the repository
    assert Run(out).status()["state"] == "done" and Run(out).epochs()[-1]["epoch"] == 2


def test_odd_paths_links_and_headers_end_with_a_message_or_work(tmp_path, pof_main):
    import struct

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link.safetensors").symlink_to(tmp_path / "fifo")  # a link to a FIFO
    (tmp_path / "l1").symlink_to(tmp_path / "l2")  # a loop of links
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    (tmp_path / "huge.safetensors").write_bytes(struct.pack("<Q", 10**18) + b"{}")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = [
        (["evaluate", tmp_path / "link.safetensors"], "is a FIFO (named pipe)"),
        (["evaluate", tmp_path / "l1", "--dataset", "digits"], "Too many levels of symbolic"),
        (["evaluate", tmp_path / "huge.safetensors", "--dataset", "digits"], "not a model file"),
        (["pretrain", "--dataset", "digits", "--out", tmp_path / "dangling"], "not a folder"),
        (["pretrain", "--dataset", f"npz:{tmp_path / 'l1'}", "--out", tmp_path / "x"], "l1"),
    ]
    for argv, words in cases:  # the link to a FIFO for real (a timeout fails a reader stuck on it)
        cli = functools.partial(run_cli, timeout=120) if argv == cases[0][0] else pof_main
        _refused(cli(*argv), words)
    assert not (tmp_path / "x").exists() and not (tmp_path / "nowhere").exists()
    out = tmp_path / "ü-日本 run"  # a unicode name with a space: trained, listed, shown
    run_cli(
        "pretrain", "--dataset", "moons", "--model", "mlp", "--epochs", "1", "--out", out, check=0
    )
    assert "ü-日本 run" in run_cli("runs", "list", tmp_path, check=0).stdout
    assert "state: done" in run_cli("runs", "show", out, check=0).stdout
