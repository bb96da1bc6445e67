"""The job queue: real background jobs started the way the app starts them, one at a time."""

import os
import signal
import time

from conftest import wait_for_state

from app.jobs import start_job
from pof.runs.jobqueue import queue_position, waiting_text
from pof.runs.run import Run


def _pretrain(root, name, epochs):
    return start_job(
        root / name,
        [
            "-m",
            "pof",
            "pretrain",
            "--dataset",
            "moons",
            "--model",
            "mlp",
            "--epochs",
            str(epochs),
            "--out",
            str(root / name),
            "--quiet",
        ],
        root,
    )


def test_queued_jobs_wait_for_the_running_one_and_start_in_order(tmp_path):
    root = tmp_path / "runs"
    _pretrain(root, "a", 5000)  # runs until cancelled below, however fast the machine
    wait_for_state(Run(root / "a"), ("running",))
    for name in ("b", "c"):
        _pretrain(root, name, 2)
        time.sleep(0.3)
    time.sleep(1.0)
    b, c = Run(root / "b"), Run(root / "c")
    assert b.status()["state"] == c.status()["state"] == "queued"
    assert [queue_position(b, root), queue_position(c, root)] == [0, 1]
    assert not b.config_file.exists()  # its CLI has not started
    # each says what it waits behind: the running job's kind, model and start time
    started = time.strftime("%H:%M", time.localtime(Run(root / "a").status()["started"]))
    assert waiting_text(b, root) == f"queued behind pretrain on mlp (started {started})"
    assert waiting_text(c, root) == (
        f"queued behind pretrain on mlp (started {started}); number 2 in the queue"
    )
    Run(root / "a").request_cancel()
    finished = wait_for_state(Run(root / "a"), ("cancelled",))["finished"]
    for run in (b, c):
        status = wait_for_state(run, ("done",))
        assert status["started"] >= finished and run.epochs()[-1]["epoch"] == 2
        finished = status["finished"]


def test_a_queued_job_can_be_cancelled_before_it_starts(tmp_path):
    root = tmp_path / "runs"
    _pretrain(root, "long", 5000)
    wait_for_state(Run(root / "long"), ("running",))
    proc = _pretrain(root, "waiting", 2)
    waiting = Run(root / "waiting")
    waiting.request_cancel()
    assert proc.wait(timeout=30) == 3
    assert waiting.status()["state"] == "cancelled" and "queue" in waiting.status()["error"]
    assert not waiting.config_file.exists()
    Run(root / "long").request_cancel()
    wait_for_state(Run(root / "long"), ("cancelled",))


def test_a_killed_job_frees_its_slot_for_the_next(tmp_path):
    root = tmp_path / "runs"
    _pretrain(root, "killed", 5000)
    status = wait_for_state(Run(root / "killed"), ("running",))
    _pretrain(root, "next", 1)
    time.sleep(1.0)
    assert Run(root / "next").status()["state"] == "queued"
    os.kill(
        status["pid"], signal.SIGKILL
    )  # the same pid as the queue wrapper: it exec'd into the CLI
    assert wait_for_state(Run(root / "killed"), ("failed",))["error"].startswith("the job")
    wait_for_state(Run(root / "next"), ("done",))
