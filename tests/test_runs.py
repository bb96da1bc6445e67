import json
import subprocess
import sys
import textwrap
import time

from pof.runs.run import Run, RunError, list_runs

WRITER = textwrap.dedent("""
    import sys
    from pof.runs.run import Run
    run = Run(sys.argv[1])
    for i in range(1500):
        run.set_status("running", progress=i / 1500, note="x" * (i % 7000))
        run.log("step", n=i, payload="y" * ((i * 37) % 9000))
    run.set_status("done", progress=1.0)
""")


def test_readers_never_see_a_torn_status_or_metrics_line(tmp_path):
    run = Run.create(tmp_path / "r", {"command": "test"})
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run.path)])
    reads, last_n = 0, -1
    while writer.poll() is None or reads < 50:
        status = run.status()  # raises on a torn file
        assert status["state"] in ("queued", "running", "done")
        records = run.metrics("step")
        for k, rec in enumerate(records):  # complete, in order, nothing lost in between
            assert rec["n"] == k and len(rec["payload"]) == (k * 37) % 9000
        assert len(records) - 1 >= last_n
        last_n = len(records) - 1
        reads += 1
    assert writer.wait() == 0 and reads > 50
    assert len(run.metrics("step")) == 1500 and run.status()["state"] == "done"


def test_a_running_status_whose_process_died_is_reported_failed(tmp_path):
    run = Run.create(tmp_path / "r", {"command": "test"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run.set_status("running", pid=dead.pid)
    status = run.status()
    assert status["state"] == "failed" and "killed or crashed" in status["error"]
    assert (
        json.loads(run.status_file.read_text())["state"] == "running"
    )  # the file itself is untouched


def test_an_occupied_folder_is_not_overwritten_by_accident(tmp_path):
    run = Run.create(tmp_path / "r", {"command": "test", "a": 1})
    run.log("epoch", epoch=1, test_acc=0.5)
    try:
        Run.create(tmp_path / "r", {"command": "test", "a": 2})
        raise AssertionError("expected RunError")
    except RunError as e:
        assert "--resume" in str(e) and "--overwrite" in str(e)
    assert run.config()["a"] == 1 and len(run.epochs()) == 1
    Run.create(tmp_path / "r", {"command": "test", "a": 3}, overwrite=True)
    assert run.config()["a"] == 3 and run.epochs() == []


def test_epochs_keep_the_latest_record_after_a_resume_and_runs_are_listed(tmp_path):
    run = Run.create(tmp_path / "a" / "r1", {"command": "pretrain", "epochs": 3})
    for e, acc in ((1, 0.1), (2, 0.2), (2, 0.25), (3, 0.3)):
        run.log("epoch", epoch=e, test_acc=acc)
    with open(run.metrics_file, "a") as f:
        f.write('{"kind": "epoch", "epo')  # a line still being written
    assert [r["test_acc"] for r in run.epochs()] == [0.1, 0.25, 0.3]
    time.sleep(0.01)
    Run.create(tmp_path / "a" / "r2", {"command": "pretrain", "epochs": 3})
    assert [r.path.name for r in list_runs(tmp_path)] == ["r2", "r1"]
    assert list_runs(tmp_path / "nothing") == []
    assert list_runs(tmp_path)[1].summary()["epochs"] == "3/3"


def test_overwriting_keeps_a_cancel_meant_for_the_queued_job_itself_and_drops_a_stale_one(tmp_path):
    import os

    old = Run.create(tmp_path / "r", {"command": "x"})
    old.request_cancel()
    old.set_status("cancelled")
    Run.create(
        tmp_path / "r", {"command": "x"}, overwrite=True
    )  # a new run: the old request is stale
    assert not (tmp_path / "r" / "cancel").exists()
    queued = Run(tmp_path / "q")
    queued.queue(os.getpid())  # as pof.runs.jobqueue does before it execs into the job (same pid)
    queued.request_cancel()  # the user cancels while the job is still starting up
    Run.create(tmp_path / "q", {"command": "x"}, overwrite=True)
    assert Run(tmp_path / "q").cancel_requested()


def test_last_record_of_a_kind_reads_the_end_of_a_long_log(tmp_path):
    run = Run.create(tmp_path / "r", {"command": "x"})
    for i in range(3000):
        run.log("step", step=i, pad="x" * 40)
    run.log("epoch", epoch=1)
    for i in range(3000, 3010):
        run.log("step", step=i)
    assert run.last("step")["step"] == 3009
    assert run.last("epoch")["epoch"] == 1  # found in the tail
    assert run.last("event") is None  # not in the tail, not in the whole log either
    assert Run.create(tmp_path / "r2", {"command": "x"}).last("step") is None
    with open(run.metrics_file, "ab") as f:
        f.write(b'{"kind": "step", "step": 99')  # being written: not a record yet
    assert run.last("step")["step"] == 3009
