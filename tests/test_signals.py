"""SIGTERM (what kill, systemd, Docker and Slurm send first) to real jobs in real subprocesses: each
stops at its next step as a cancel does, reads "cancelled", exits 3 and resumes bit-identically."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, run_cli, wait_for_state
from interrupt import held_before_step, wait_for_file

from pof.models.tensors import read_safetensors
from pof.runs.run import Run

DIGITS = ROOT / "assets" / "digits-cnn-small-sgd.safetensors"
PRETRAIN = ["pretrain", "--dataset", "digits", "--batch-size", "16", "--epochs", "3", "--seed", "1"]
POST = ["post-train", DIGITS, "--epochs", "2", "--batch-size", "64", "--seed", "3"]
STEPS = {"pretrain": 85, "post-train": 22}  # per epoch: digits' 1347 training images


def wait_for_handler(proc: subprocess.Popen, timeout: float = 30) -> None:
    """Until the process catches SIGTERM (its SigCgt mask in /proc says so)."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        with open(f"/proc/{proc.pid}/status") as f:
            caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt"))
        if caught & (1 << (signal.SIGTERM - 1)):
            return
        time.sleep(0.005)
    raise AssertionError("no SIGTERM handler")


def _same_run(a: Run, b: Run) -> None:
    """Metrics and final weights equal, bit for bit."""
    ea, eb = a.epochs(), b.epochs()
    assert [r["epoch"] for r in ea] == [r["epoch"] for r in eb]
    for ra, rb in zip(ea, eb, strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert ra.get(key) == rb.get(key), (ra, rb)
    wa, _ = read_safetensors(a.checkpoint("final"))
    wb, _ = read_safetensors(b.checkpoint("final"))
    assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.parametrize("argv", [PRETRAIN, POST], ids=["pretrain", "post-train"])
def test_sigterm_stops_a_training_at_its_next_step_and_resume_is_bit_identical(tmp_path, argv):
    whole, stopped, held = tmp_path / "whole", tmp_path / "stopped", tmp_path / "held"
    run_cli(*argv, "--out", whole, "--quiet", check=0)
    # held just before the 3rd step of epoch 2, then terminated as `kill PID` does
    proc = held_before_step(STEPS[argv[0]] + 3, held, *argv, "--out", stopped, "--quiet")
    wait_for_file(held, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3, proc.communicate()
    err = proc.communicate()[1]
    assert "Traceback" not in err and "cancelled: stopped by SIGTERM during epoch 2" in err
    status = Run(stopped).status()
    assert status["state"] == "cancelled" and "--resume" in status["message"]
    assert not Run(stopped).checkpoint("final").exists()
    run_cli(argv[0], "--out", stopped, "--resume", "--quiet", check=0)
    assert Run(stopped).status()["state"] == "done"
    _same_run(Run(whole), Run(stopped))


def test_sigterm_while_loading_interrupts_at_once_and_leaves_no_running_state(tmp_path):
    """Before the loop polls (the data still loading) there is no next step to wait for."""
    out = tmp_path / "r"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pof", *PRETRAIN, "--out", out, "--quiet"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_handler(proc)  # the first thing `python -m pof` does; torch is still importing
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 3
    assert "Traceback" not in proc.communicate()[1]
    assert not out.exists()


def test_sigterm_to_an_analysis_job_marks_it_cancelled_and_exits_3(tmp_path):
    out = tmp_path / "cmp"
    cmd = [sys.executable, "-m", "analysis", "compare", DIGITS, "--part", "hessian"]
    cmd += ["--samples", "1000", "--density-steps", "80", "--probes", "40", "--out", out]
    proc = subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    job = Run(out / "hessian")
    t0 = time.time()  # inside the computation, polling between its units
    while job.status().get("stage", "").find("top eigenvalues") < 0:
        assert time.time() - t0 < 120 and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3
    assert "Traceback" not in proc.communicate()[1]
    assert job.status()["state"] == "cancelled"


_APP = """
import sys, time
from pathlib import Path
from app.jobs import start_job

run, root = Path(sys.argv[1]), Path(sys.argv[2])
proc = start_job(run, ["-m", "pof", *sys.argv[3:], "--out", str(run), "--quiet"], root)
print(proc.pid, flush=True)
time.sleep(600)
"""


def test_jobs_outlive_the_apps_shutdown_and_a_sigterm_to_them_cancels_cleanly(tmp_path):
    """The app starts each job in its own session: stopping the app (Ctrl-C, SIGTERM to its process
    group) leaves the jobs running, and a restarted app re-attaches from their folders; a SIGTERM
    to the job itself (docker stop, systemd stopping the whole service) cancels it, resumable."""
    root = tmp_path / "runs"
    argv = [*PRETRAIN[:-4], "--epochs", "2", "--seed", "1"]
    apps, jobs = [], []
    for name in ("kept", "stopped"):
        app = subprocess.Popen(
            [sys.executable, "-c", _APP, root / name, root, *argv],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # a process group of its own, as a served app has
        )
        apps.append(app)
        jobs.append(int(app.stdout.readline()))
    kept, stopped = Run(root / "kept"), Run(root / "stopped")
    for app in apps:
        os.killpg(app.pid, signal.SIGTERM)  # the app's whole process group, as Ctrl-C would
        assert app.wait(timeout=30) == -signal.SIGTERM
    for job in jobs:
        os.kill(job, 0)  # still alive
    t0 = time.time()  # the second job waits in the queue behind the first: stop it once it runs
    while stopped.status().get("state") != "running" or not stopped.epochs():
        assert time.time() - t0 < 300, stopped.status()
        time.sleep(0.05)
    assert kept.status()["state"] == "done"
    os.killpg(jobs[1], signal.SIGTERM)
    t0 = time.time()
    while stopped.status()["state"] == "running":
        assert time.time() - t0 < 120
        time.sleep(0.05)
    status = stopped.status()
    assert status["state"] == "cancelled" and "SIGTERM" in status["message"], status
    run_cli("pretrain", "--out", root / "stopped", "--resume", "--quiet", check=0)
    _same_run(kept, stopped)


def test_two_sigterms_a_sigint_or_a_sighup_leave_a_cancelled_run_and_two_resumes_race_safely(
    tmp_path,
):
    for sig, twice in ((signal.SIGTERM, True), (signal.SIGINT, False), (signal.SIGHUP, False)):
        out, held = tmp_path / sig.name, tmp_path / f"held-{sig.name}"
        proc = held_before_step(STEPS["pretrain"] + 3, held, *PRETRAIN, "--out", out, "--quiet")
        wait_for_file(held, proc)
        proc.send_signal(sig)
        if twice:  # an impatient second kill interrupts at once: still cancelled, still exit 3
            proc.send_signal(sig)
        assert proc.wait(timeout=120) == 3
        assert "Traceback" not in proc.communicate()[1]
        assert Run(out).status()["state"] == "cancelled"
    # two resumes of one run at the same instant: one continues it, the other is refused
    out = tmp_path / "SIGTERM"
    cmd = [sys.executable, "-m", "pof", "pretrain", "--out", str(out), "--resume", "--quiet"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    codes = sorted(p.wait(timeout=300) for p in procs)
    errors = "".join(p.communicate()[1] for p in procs)
    assert codes == [0, 2] and "Traceback" not in errors, errors
    assert Run(out).status()["state"] == "done" and Run(out).epochs()[-1]["epoch"] == 3


def test_sigterm_to_a_job_waiting_in_the_queue_cancels_it_before_it_starts(tmp_path):
    from app.jobs import start_job

    root = tmp_path / "runs"
    argv = ["-m", "pof", "pretrain", "--dataset", "moons", "--model", "mlp", "--quiet"]
    first = start_job(root / "long", [*argv, "--epochs", "5000", "--out", str(root / "long")], root)
    wait_for_state(Run(root / "long"), ("running",))
    waiting = start_job(root / "w", [*argv, "--epochs", "2", "--out", str(root / "w")], root)
    wait_for_state(Run(root / "w"), ("queued",))
    wait_for_handler(waiting)  # before it, the interpreter is still starting (see pof.signals)
    waiting.send_signal(signal.SIGTERM)
    assert waiting.wait(timeout=60) == 3
    status = Run(root / "w").status()
    assert status["state"] == "cancelled" and "SIGTERM while waiting" in status["error"]
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=120) == 3
    assert Run(root / "long").status()["state"] == "cancelled"


def test_a_job_started_with_nohup_ignores_sighup_and_still_stops_on_sigterm(tmp_path):
    from interrupt import _child

    out, held = tmp_path / "r", tmp_path / "held"
    argv = [*PRETRAIN, "--out", out, "--quiet"]
    proc = subprocess.Popen(
        ["nohup", *_child("hold", STEPS["pretrain"] + 3, held, argv)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_file(held, proc)
    proc.send_signal(signal.SIGHUP)  # nohup asked for it to be ignored: the job carries on
    time.sleep(1.0)
    assert proc.poll() is None and Run(out).status()["state"] == "running"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 3
    assert Run(out).status()["state"] == "cancelled"


_SWALLOW = """
import os, signal, time
from pof.signals import stop_on_sigterm, terminated

stop_on_sigterm()
try:  # nothing polls yet: the interrupt is raised, and here (as library code may) swallowed
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(5)
except KeyboardInterrupt:
    pass
print("stop requested" if terminated() else "request lost")
"""


def test_a_sigterm_whose_interrupt_is_swallowed_is_still_seen_at_the_next_poll():
    """Seen for real: a SIGTERM while `analysis compare` loaded its model was lost, and the job
    ran to the end."""
    proc = subprocess.run(
        [sys.executable, "-c", _SWALLOW], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "stop requested", proc
