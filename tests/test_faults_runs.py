"""Fault suite for run folders and the job queue: corrupt files, dead and stale jobs, racing
creators, foreign folders, killed writers and a full disk, built for real (files, processes,
signals)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pof.runs.create import publish_config
from pof.runs.jobqueue import queue_state
from pof.runs.run import BROKEN, STALE_SECONDS, STATES, Run, RunError, list_runs

ENV = dict(os.environ)


def child(code: str, *args, unprivileged: bool = False, **kw) -> subprocess.CompletedProcess:
    """`python -c code args...` with pof importable; `unprivileged`: as nobody when we are root,
    since root ignores file permissions (the modules are imported before the switch)."""
    drop = "if os.geteuid() == 0:\n    os.setgid(65534); os.setuid(65534)\n" if unprivileged else ""
    code = "import json, os, sys\nfrom pof.runs.run import *\n" + drop + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=60,
        **kw,
    )


@pytest.fixture
def open_tmp():
    """A temporary folder that nobody (an unprivileged child) may enter; pytest's own is 0700."""
    path = Path(tempfile.mkdtemp(prefix="pof-faults-"))
    path.chmod(0o755)
    yield path
    for p in [
        path,
        *path.rglob("*"),
    ]:  # give back the permissions a test took away, so it can be removed
        if p.is_dir() and not p.is_symlink():
            p.chmod(0o755)
    shutil.rmtree(path)


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def write_status(path: Path, **status) -> Run:
    path.mkdir(parents=True, exist_ok=True)
    (path / "status.json").write_text(json.dumps(status))
    return Run(path)


def no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.rglob("*.tmp")]


# --- readers survive corruption -------------------------------------------------------------------

CORRUPT_STATUS = {
    "truncated": b'{"state": "running", "progress": 0.4, "heart',
    "garbage": bytes(range(256)) * 3,
    "empty": b"",
    "list": b"[1, 2, 3]",
    "string": b'"running"',
    "bad-state": b'{"state": "exploded", "created": 1}',
    "state-number": b'{"state": 5}',
    "created-text": b'{"state": "done", "created": "yesterday"}',
    "pid-text": b'{"state": "running", "pid": "1234", "host": "x"}',
    "pid-huge": b'{"state": "running", "pid": 99999999999999999999}',
    "progress-null": b'{"state": "running", "progress": null}',
    "heartbeat-nan": b'{"state": "running", "heartbeat": NaN}',
    "error-object": b'{"state": "failed", "error": {"why": 1}}',
    "deep": b"[" * 100_000,
    "huge": b'{"state": "done", "pad": "' + b"x" * (2 << 20) + b'"}',
}


def build_corrupt_root(root: Path) -> dict[str, Run]:
    runs = {
        "good": Run.create(
            root / "good", {"command": "pretrain", "model": "mlp", "dataset": "moons", "epochs": 2}
        )
    }
    runs["good"].set_status("done", progress=1.0)
    runs["good"].log("epoch", epoch=2, test_acc=0.9)
    for name, data in CORRUPT_STATUS.items():
        run = Run.create(root / f"status-{name}", {"command": "pretrain", "epochs": 1})
        run.status_file.write_bytes(data)
        runs[name] = run
    folder = Run.create(root / "status-is-a-folder", {"command": "pretrain"})
    folder.status_file.unlink()
    folder.status_file.mkdir()
    fifo = Run.create(
        root / "status-is-a-fifo", {"command": "pretrain"}
    )  # reading a FIFO would block forever
    fifo.status_file.unlink()
    os.mkfifo(fifo.status_file)
    for name, data in {
        "truncated": b'{"command": "pre',
        "list": b"[]",
        "binary": b"\xff\xfe\x00",
    }.items():
        run = Run.create(root / f"config-{name}", {"command": "pretrain"})
        run.config_file.write_bytes(data)
        runs[f"config-{name}"] = run
    typed = Run.create(
        root / "config-wrong-types", {"command": ["x"], "model": {"a": 1}, "epochs": None}
    )
    typed.log(
        "epoch", epoch=1, test_acc="high"
    )  # a record of the wrong type: not a number in the summary
    metrics = Run.create(root / "metrics-garbage", {"command": "pretrain", "epochs": 3})
    with open(metrics.metrics_file, "ab") as f:
        f.write(
            b'{"kind": "epoch", "epoch": 1, "test_acc": 0.5}\n\xff\xfe garbage\n[1,2]\n"str"\n'
            b'{"kind": "epoch", "epoch": "2"}\n{"kind": "epoch", "epoch": true}\n'
            b'{"kind": "epoch", "epo\n'
            b'{"kind": "epoch", "epoch": 3, "test_acc": 0.7}\n'
        )
    return runs


def test_corrupt_status_config_and_metrics_make_one_broken_run_not_a_broken_list(tmp_path):
    root = tmp_path / "runs"
    runs = build_corrupt_root(root)
    listed = list_runs(root)
    assert len(listed) == len(runs) + 4  # + folder, fifo, wrong types, metrics
    for run in listed:
        status, summary = run.status(), run.summary()
        assert summary["state"] in (*STATES, BROKEN) and isinstance(summary["command"], str)
        assert summary["test_acc"] is None or isinstance(summary["test_acc"], (int, float))
        if run.path.name.startswith("status-"):
            assert status["state"] == summary["state"] == BROKEN, (run.path, status)
            assert str(run.status_file) in status["error"] and "--overwrite" in status["error"]
    why = {r.path.name: r.status()["error"] for r in listed if r.path.name.startswith("status-")}
    assert "not valid JSON" in why["status-truncated"] and "not valid JSON" in why["status-garbage"]
    assert "empty" in why["status-empty"] and "JSON list, not an object" in why["status-list"]
    assert (
        "state is 'exploded'" in why["status-bad-state"]
        and "created is 'yesterday'" in why["status-created-text"]
    )
    assert (
        "pid is '1234'" in why["status-pid-text"] and "not a process id" in why["status-pid-huge"]
    )
    assert (
        "progress is None" in why["status-progress-null"]
        and "heartbeat is nan" in why["status-heartbeat-nan"]
    )
    assert (
        "error is {'why': 1}" in why["status-error-object"] and "larger than" in why["status-huge"]
    )
    assert (
        "not a regular file" in why["status-is-a-fifo"]
        and "unreadable" in why["status-is-a-folder"]
    )
    for name in ("truncated", "list", "binary"):
        run = runs[f"config-{name}"]
        summary = run.summary()
        assert summary["state"] == BROKEN and str(run.config_file) in summary["error"]
        with pytest.raises(RunError, match=r"config\.json: (not valid JSON|holds a JSON list)"):
            run.config()
    with pytest.raises(RunError, match=r"config\.json: missing") as missing:
        Run(tmp_path / "nothing").config()
    assert isinstance(missing.value, FileNotFoundError)  # what callers written before still catch
    assert list_runs(runs["good"].config_file) == [] and list_runs(tmp_path / "no-such-root") == []
    typed = Run(root / "config-wrong-types").summary()
    assert typed["command"] == "['x']" and typed["test_acc"] is None and typed["state"] == "queued"
    metrics = Run(root / "metrics-garbage")
    assert [r["epoch"] for r in metrics.epochs()] == [1, 3]
    assert (
        len(metrics.metrics()) == 4 and metrics.bad_lines == 4
    )  # garbage, list, string, torn line
    assert metrics.last("epoch")["epoch"] == 3 and metrics.summary()["epochs"] == "3/3"


def test_runs_list_on_the_command_line_lists_every_run_however_broken(tmp_path):
    root = tmp_path / "runs"
    runs = build_corrupt_root(root)
    proc = run_cli("runs", "list", root, check=0, timeout=120)
    lines = proc.stdout.splitlines()
    for run in list_runs(root):
        assert any(line.startswith(str(run.path)) for line in lines), (run.path, proc.stdout)
    assert (
        sum(BROKEN in line for line in lines) == len(CORRUPT_STATUS) + 2 + 3
    )  # status ones, folder, fifo, configs
    rows = json.loads(run_cli("runs", "list", root, "--json", check=0, timeout=120).stdout)
    assert {r["run"] for r in rows} == {str(r.path) for r in list_runs(root)} and len(rows) == len(
        runs
    ) + 4
    show = run_cli("runs", "show", runs["config-truncated"].path, timeout=120)
    assert (
        show.returncode == 2
        and "config.json: not valid JSON" in show.stderr
        and "Traceback" not in show.stderr
    )


def test_list_runs_does_not_follow_links_out_of_the_root(tmp_path):
    root, foreign = tmp_path / "runs", tmp_path / "elsewhere"
    Run.create(root / "mine", {"command": "x"})
    Run.create(foreign / "theirs", {"command": "x"})
    (root / "link").symlink_to(foreign, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # a loop must not hang the walk
    linked = Run.create(root / "linked-status", {"command": "x"})
    linked.status_file.unlink()
    linked.status_file.symlink_to(foreign / "theirs" / "status.json")
    assert [r.path.name for r in list_runs(root)] == ["mine"]


def test_unreadable_folders_are_skipped_and_unreadable_status_is_broken(open_tmp):
    root = open_tmp / "runs"
    Run.create(root / "ok", {"command": "x"})
    Run.create(root / "locked" / "inner", {"command": "x"})
    (root / "locked").chmod(0)
    secret = Run.create(root / "secret", {"command": "x"})
    secret.status_file.chmod(0)
    secret.config_file.chmod(0)
    out = child(
        """
        # an unreadable root: no runs, no error
        assert list_runs(os.path.join(sys.argv[1], "locked")) == []
        runs = list_runs(sys.argv[1])
        print(json.dumps({
            r.path.name: [r.status()["state"], r.status().get("error"), r.summary()["state"]]
            for r in runs
        }))
    """,
        root,
        unprivileged=True,
    )
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout)
    assert set(seen) == {"ok", "secret"}  # locked/inner cannot be read, so it is not listed
    assert (
        seen["secret"][0] == BROKEN
        and "Permission denied" in seen["secret"][1]
        and seen["secret"][2] == BROKEN
    )


# --- the queue never waits for a job that is not there --------------------------------------------


def test_the_queue_counts_no_dead_stale_or_broken_run_and_the_next_job_starts(tmp_path):
    root = tmp_path / "runs"
    old = time.time() - 3600
    write_status(
        root / "legacy-queued", state="queued", created=old, heartbeat=old, progress=0.0
    )  # no pid
    write_status(
        root / "dead",
        state="running",
        created=old,
        heartbeat=old,
        pid=dead_pid(),
        host=socket.gethostname(),
    )
    write_status(root / "broken", state="queued", created="soon")
    (root / "truncated").mkdir()
    (root / "truncated" / "status.json").write_text('{"state": "queued", "crea')
    reused = (
        sleeper()
    )  # a live process that started after the status was written: the pid was reused
    write_status(
        root / "reused",
        state="queued",
        created=old,
        heartbeat=old,
        pid=reused.pid,
        host=socket.gethostname(),
    )
    try:
        states = {r.path.name: r.status() for r in list_runs(root)}
        assert (
            states["legacy-queued"]["state"] == "failed"
            and "no pid" in states["legacy-queued"]["error"]
        )
        assert states["dead"]["state"] == states["reused"]["state"] == "failed"
        assert states["broken"]["state"] == states["truncated"]["state"] == BROKEN
        new = Run(root / "new")
        new.queue(os.getpid())
        assert queue_state(new, root) == (0, 0)
        new.set_status("cancelled")  # this test's own stand-in job leaves the line
        done = tmp_path / "ran"
        job = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pof.runs.jobqueue",
                str(root / "job"),
                str(root),
                "--",
                "-c",
                f"open({str(done)!r}, 'w').write('ok')",
            ],
            cwd=ROOT,
            env={**ENV, "POF_JOBS": "many"},
        )  # a malformed setting means one slot
        assert job.wait(timeout=30) == 0 and done.read_text() == "ok"
    finally:
        reused.kill()
        reused.wait()


def test_a_live_queued_job_is_still_counted_ahead(tmp_path):
    root = tmp_path / "runs"
    waiting = sleeper()
    try:
        Run(root / "first").queue(waiting.pid)
        time.sleep(0.01)
        second = Run(root / "second")
        second.queue(os.getpid())
        assert queue_state(second, root) == (1, 0)
    finally:
        waiting.kill()
        waiting.wait()


def test_a_command_that_fails_after_creating_its_folder_does_not_stay_queued(tmp_path):
    out = tmp_path / "runs" / "bogus"
    proc = run_cli(
        "pretrain",
        "--dataset",
        "moons",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--augment",
        "bogus",
        "--out",
        out,
        timeout=240,
    )
    assert proc.returncode == 2 and "augment" in proc.stderr
    assert not out.exists()  # refused before any folder was made
    assert queue_state(Run(tmp_path / "runs" / "next"), tmp_path / "runs") == (0, 0)


def test_a_status_with_no_pid_is_stale_only_after_the_grace_period(tmp_path):
    now = time.time()
    fresh = write_status(tmp_path / "fresh", state="queued", created=now, heartbeat=now)
    assert fresh.status()["state"] == "queued"
    old = now - STALE_SECONDS - 5
    assert (
        write_status(tmp_path / "old", state="running", created=old, heartbeat=old).status()[
            "state"
        ]
        == "failed"
    )
    assert write_status(tmp_path / "nobeat", state="queued").status()["state"] == "failed"


# --- creating a run: atomic, exclusive, never into someone else's folder --------------------------

RACER = """
    import time
    import fcntl
    target, ready, go, me, overwrite, flock = sys.argv[1:7]
    if flock == "off":  # no flock (as on some network file systems): os.link alone must decide
        fcntl.flock = lambda *a: (_ for _ in ()).throw(OSError("no flock here"))
    open(ready, "w").close()
    while not os.path.exists(go):
        time.sleep(0.0002)
    try:
        Run.create(target, {"command": "race", "me": me}, overwrite=overwrite == "1")
        print("won")
    except RunError as e:
        print("lost:", e)
    time.sleep(1.5)  # the winner stays alive while the loser looks at its status
"""


@pytest.mark.parametrize("overwrite,flock", [("0", "on"), ("1", "on"), ("0", "off")])
def test_two_processes_creating_one_run_at_the_same_instant_exactly_one_wins(
    tmp_path, overwrite, flock
):
    for attempt in range(5):
        target, go = tmp_path / f"race{attempt}" / "run", tmp_path / f"go{attempt}"
        if overwrite == "1":  # both replace a finished run
            Run.create(target, {"command": "race", "me": "old"}).set_status("done")
        ready = [tmp_path / f"ready{attempt}-{i}" for i in range(2)]
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import os, sys\nfrom pof.runs.run import *\n" + textwrap.dedent(RACER),
                    str(target),
                    str(ready[i]),
                    str(go),
                    str(i),
                    overwrite,
                    flock,
                ],
                env=ENV,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(2)
        ]
        deadline = time.time() + 60
        while not all(r.exists() for r in ready):
            assert time.time() < deadline
            time.sleep(0.01)
        go.touch()
        outs = [p.communicate(timeout=60) for p in procs]
        results = [o[0].strip() for o in outs]
        assert sorted(r.split(":")[0] for r in results) == ["lost", "won"], outs
        winner = results.index("won")
        loser = results[1 - winner]
        assert (
            "--out" in loser and str(target) in loser and "holds no run" not in loser
        )  # never mistaken for foreign
        assert Run(target).config()["me"] == str(winner)
        assert Run(target).status()["state"] in (
            "queued",
            "failed",
        )  # failed: the winner has exited since
        assert no_temp_files(target.parent)


def test_publishing_the_config_twice_fails_the_second_even_past_all_checks(tmp_path):
    run = Run.create(tmp_path / "r", {"command": "x", "n": 1})
    (run.path / ".config.json.123.0123abcd.tmp").write_text(
        "{"
    )  # a killed creator's leftover is not foreign
    with pytest.raises(RunError, match="at the same moment"):
        publish_config(run, '{"command": "x", "n": 2}', overwrite=False)  # as without flock
    assert run.config()["n"] == 1
    assert Run.create(tmp_path / "r", {"command": "x", "n": 3}, overwrite=True).config()["n"] == 3


def test_create_refuses_a_folder_that_is_not_a_run_and_writes_nothing_there(tmp_path):
    folder = tmp_path / "mine"
    (folder / "checkpoints").mkdir(parents=True)
    weights = os.urandom(4096)
    (folder / "checkpoints" / "final.safetensors").write_bytes(weights)
    (folder / "config.json").write_text(
        '{"model_type": "bert"}'
    )  # a model folder's config: not a run's
    for overwrite in (False, True):
        with pytest.raises(RunError, match="not empty and holds no run of this project"):
            Run.create(folder, {"command": "pretrain"}, overwrite=overwrite)
    assert (folder / "checkpoints" / "final.safetensors").read_bytes() == weights
    assert (folder / "config.json").read_text() == '{"model_type": "bert"}'
    assert sorted(p.name for p in folder.rglob("*")) == [
        "checkpoints",
        "config.json",
        "final.safetensors",
    ]
    a_file = tmp_path / "file"
    a_file.write_text("keep")
    with pytest.raises(RunError, match="is not a folder"):
        Run.create(a_file, {"command": "x"}, overwrite=True)
    with pytest.raises(RunError, match="cannot create the run folder"):
        Run.create(a_file / "below", {"command": "x"})
    assert a_file.read_text() == "keep"
    (tmp_path / "empty").mkdir()
    assert (
        Run.create(tmp_path / "empty", {"command": "x"}).status()["state"] == "queued"
    )  # an empty folder is fine
    with pytest.raises(TypeError):  # a config that cannot be saved: no folder is left behind
        Run.create(tmp_path / "unsaveable", {"command": object()})
    assert not (tmp_path / "unsaveable").exists()


def test_create_in_an_unwritable_place_is_refused_and_leaves_nothing(open_tmp):
    parent = open_tmp / "readonly"
    parent.mkdir()
    parent.chmod(0o555)
    out = child(
        """
        try:
            Run.create(os.path.join(sys.argv[1], "new", "run"), {"command": "x"})
        except RunError as e:
            print("refused:", e)
    """,
        parent,
        unprivileged=True,
    )
    assert (
        "refused: cannot create the run folder" in out.stdout
        and str(parent / "new" / "run") in out.stdout
    ), out
    assert list(parent.iterdir()) == []


def test_overwrite_refuses_a_live_job_and_a_run_reading_its_own_checkpoint(tmp_path):
    job = sleeper()
    try:
        run = Run.create(tmp_path / "r", {"command": "pretrain"})
        run.log("epoch", epoch=1, test_acc=0.5)
        run.checkpoint("final").write_bytes(b"weights")
        run.set_status("running", pid=job.pid, progress=0.5)
        with pytest.raises(RunError, match=rf"holds a running job \(pid {job.pid} .*runs cancel"):
            Run.create(run.path, {"command": "pretrain"}, overwrite=True)
        queued = Run(tmp_path / "q")
        queued.queue(job.pid)  # the app queued another process for this folder
        with pytest.raises(RunError, match="holds a queued job"):
            Run.create(queued.path, {"command": "pretrain"})
        assert run.checkpoint("final").read_bytes() == b"weights" and len(run.epochs()) == 1
        assert run.config() == {"command": "pretrain"} and run.status()["pid"] == job.pid
    finally:
        job.kill()
        job.wait()
    assert run.status()["state"] == "failed"  # now the job is gone: the folder can be replaced
    with pytest.raises(RunError, match=r"would delete .*final\.safetensors, which this run reads"):
        Run.create(
            run.path,
            {"command": "post-train", "config": {"checkpoint": str(run.checkpoint("final"))}},
            overwrite=True,
        )
    assert run.checkpoint("final").read_bytes() == b"weights"
    Run.create(run.path, {"command": "pretrain", "n": 2}, overwrite=True)
    assert run.config()["n"] == 2 and not run.checkpoint("final").exists() and run.epochs() == []
    assert (
        run.status()["state"] == "queued" and "error" not in run.status()
    )  # nothing of the old run leaks in


# --- resume ---------------------------------------------------------------------------------------


def test_begin_resume_clears_a_stale_cancel_records_its_pid_and_refuses_a_live_job(tmp_path):
    run = Run.create(tmp_path / "r", {"command": "pretrain", "config": {}})
    run.set_status("running", pid=dead_pid(), progress=0.5)
    run.request_cancel()
    run.set_status("cancelled", message="cancelled during epoch 2")
    run.begin_resume()
    status = run.status()
    assert (
        not run.cancel_requested() and status["state"] == "running" and status["pid"] == os.getpid()
    )
    assert (
        status.get("error") is None and status.get("message") is None and "finished" not in status
    )

    run.set_status(
        "running", pid=dead_pid()
    )  # killed: the resumed job's own heartbeats record its pid
    run.set_status("running", progress=0.7)
    assert run.status()["state"] == "running" and run.status()["pid"] == os.getpid()

    queued = Run(tmp_path / "q")
    queued.queue(
        os.getpid()
    )  # pof.runs.jobqueue queued this very process, and the user cancelled it while starting
    queued.request_cancel()
    queued.begin_resume()
    assert queued.cancel_requested()

    job = sleeper()
    try:
        live = Run(tmp_path / "live")
        live.queue(job.pid)
        live.set_status("running", pid=job.pid)
        live.request_cancel()
        with pytest.raises(RunError, match=rf"is running \(pid {job.pid}.*cannot be resumed twice"):
            live.begin_resume()
        assert live.cancel_requested() and live.status()["pid"] == job.pid
    finally:
        job.kill()
        job.wait()


def test_queueing_a_folder_again_drops_an_old_cancel_but_keeps_one_for_the_same_job(tmp_path):
    run = Run(tmp_path / "r")
    run.queue(1234567)
    run.request_cancel()
    run.set_status("cancelled", error="cancelled while waiting in the queue")
    run.queue(os.getpid())  # a new job for the same folder: the old request must not cancel it
    assert not run.cancel_requested()
    run.request_cancel()
    run.queue(os.getpid())  # the same job announced twice (the app, then pof.runs.jobqueue itself)
    assert run.cancel_requested()


# --- killed writers, full disks, read-only folders ------------------------------------------------

KILLED = """
    import signal
    run = Run(sys.argv[1])
    run.set_status("running", progress=0.5)
    run.log("epoch", epoch=1, test_acc=0.5)
    point = sys.argv[2]
    real_write = os.write
    def die(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    def half_then_die(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        die()
    if point == "before-rename":
        os.replace = die
    elif point == "mid-write":
        os.write = half_then_die
    if point == "mid-metrics-line":
        os.write = half_then_die
        run.log("epoch", epoch=2, test_acc=0.6)
    run.set_status("running", progress=0.9, pad="x" * 100000)
"""


@pytest.mark.parametrize("point", ["before-rename", "mid-write", "mid-metrics-line"])
def test_a_writer_killed_at_any_point_leaves_a_readable_run(tmp_path, point):
    run = Run.create(tmp_path / "runs" / "r", {"command": "pretrain", "epochs": 3})
    proc = child(KILLED, run.path, point)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    raw = json.loads(run.status_file.read_text())  # the last whole status, not a torn one
    assert raw["progress"] == 0.5 and raw["state"] == "running"
    status = run.status()
    assert status["state"] == "failed" and "killed or crashed" in status["error"]
    assert [r.path for r in list_runs(tmp_path / "runs")] == [run.path]
    assert [r["epoch"] for r in run.epochs()] == [1]
    resumed = Run(run.path)  # a resumed job goes on writing the same log
    resumed.begin_resume()
    resumed.log("epoch", epoch=2, test_acc=0.65)
    assert [r["epoch"] for r in resumed.epochs()] == [
        1,
        2,
    ]  # a torn line does not swallow the next one
    assert resumed.bad_lines == (1 if point == "mid-metrics-line" else 0)


def test_a_full_disk_never_corrupts_the_status_or_leaves_a_half_made_run(open_tmp):
    run = Run.create(open_tmp / "r", {"command": "pretrain"})
    run.set_status("running", progress=0.25)
    before = run.status_file.read_bytes()
    out = child(
        """
        import resource, signal
        # a write past the limit fails with EFBIG, and no file may grow past 2 KiB: a full disk
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        run = Run(sys.argv[1])
        try:
            run.set_status("running", progress=0.5, pad="x" * 10000)
        except OSError as e:
            print("status:", e.errno)
        try:
            Run.create(sys.argv[2], {"command": "pretrain", "pad": "y" * 10000})
        except RunError as e:
            print("create:", e)
    """,
        run.path,
        open_tmp / "new",
    )
    assert "status: 27" in out.stdout and "create: cannot write the run folder" in out.stdout, (
        out
    )  # 27: EFBIG
    assert run.status_file.read_bytes() == before and no_temp_files(open_tmp)
    assert not (open_tmp / "new").exists()


def test_a_read_only_run_folder_keeps_its_status(open_tmp):
    run = Run.create(open_tmp / "r", {"command": "pretrain"})
    run.set_status("cancelled", progress=0.25)
    before = run.status_file.read_bytes()
    run.path.chmod(0o555)
    out = child(
        """
        try:
            Run(sys.argv[1]).set_status("running", progress=0.5)
        except PermissionError as e:
            print("refused", e.errno)
        try:
            Run(sys.argv[1]).begin_resume()
        except RunError as e:
            print("resume:", e)
    """,
        run.path,
        unprivileged=True,
    )
    assert "refused 13" in out.stdout and "resume: cannot resume" in out.stdout, out
    assert run.status_file.read_bytes() == before and no_temp_files(open_tmp)


# --- property: no file content crashes or hangs a reader ------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)
STATUS_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "state": st.sampled_from(STATES) | JSON,
        "pid": st.integers() | JSON,
        "created": st.floats() | JSON,
        "heartbeat": st.floats() | JSON,
        "progress": st.floats() | JSON,
        "host": JSON,
        "error": JSON,
    },
)
CONTENT = st.one_of(
    st.binary(max_size=600),
    JSON.map(lambda v: json.dumps(v).encode()),
    STATUS_LIKE.map(lambda v: json.dumps(v).encode()),
)
LINES = st.lists(
    st.one_of(
        st.binary(max_size=80),
        JSON.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"kind": st.just("epoch"), "epoch": JSON | st.integers()}, optional={"test_acc": JSON}
        ).map(lambda v: json.dumps(v).encode()),
    ),
    max_size=8,
).map(b"\n".join)


@settings(max_examples=200, deadline=5000, suppress_health_check=[HealthCheck.too_slow])
@given(status=CONTENT, config=CONTENT, metrics=LINES)
def test_no_file_content_crashes_or_hangs_a_reader(status, config, metrics):
    with tempfile.TemporaryDirectory() as tmp:
        run = Run(Path(tmp) / "r")
        run.path.mkdir()
        run.status_file.write_bytes(status)
        run.config_file.write_bytes(config)
        run.metrics_file.write_bytes(metrics)
        assert run.status()["state"] in (*STATES, BROKEN)
        summary = run.summary()
        assert summary["state"] in (*STATES, BROKEN) and isinstance(summary["command"], str)
        assert all(
            summary[k] is None or isinstance(summary[k], str) for k in ("model", "dataset", "error")
        )
        assert all(
            summary[k] is None or isinstance(summary[k], (int, float))
            for k in ("progress", "test_acc")
        )
        assert all(isinstance(r, dict) for r in run.metrics())
        assert all(isinstance(r["epoch"], int) for r in run.epochs())
        run.last("epoch")
        assert [r.path for r in list_runs(tmp)] == [run.path]
        try:
            run.config()
        except RunError as e:
            assert str(run.config_file) in str(e)
        queue_state(Run(Path(tmp) / "other"), Path(tmp))


def test_a_job_the_app_queued_that_refuses_its_input_says_why_in_its_folder(tmp_path):
    """The app starts jobs through pof.runs.jobqueue, which marks the folder queued under its pid
    and execs the command: a refusal before the run exists must leave the reason, not a mute dead
    job."""
    root = tmp_path / "runs"
    folder = root / "bogus"
    env = dict(os.environ)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pof.runs.jobqueue",
            str(folder),
            str(root),
            "--",
            "-m",
            "pof",
            "pretrain",
            "--augment",
            "bogus",
            "--out",
            str(folder),
            "--quiet",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode == 2, proc.stderr
    status = Run(folder).status()
    assert (
        status["state"] == "failed" and "augment" in status["error"] and "bogus" in status["error"]
    )
    assert status["error"] in proc.stderr


def test_a_cancel_sent_while_a_resume_starts_is_kept_and_one_on_a_finished_run_is_not_written(
    tmp_path,
):
    old = time.time() - 100
    run = write_status(tmp_path / "r", state="cancelled", created=old, heartbeat=old, finished=old)
    (run.path / "config.json").write_text(json.dumps({"command": "pretrain", "config": {}}))
    run.request_cancel()  # written after the job's last word: a user's request racing the resume
    run.begin_resume()
    assert (
        run.cancel_requested()
    )  # kept: the resumed job stops at its first step, as the user asked
    os.utime(
        run.path / "cancel", (old - 10, old - 10)
    )  # the same file, answered before the job stopped
    run.set_status("cancelled")
    run.begin_resume()
    assert not run.cancel_requested()
    run.set_status("done")
    proc = run_cli("runs", "cancel", run.path, check=0)
    assert "nothing to cancel" in proc.stdout and not run.cancel_requested()
