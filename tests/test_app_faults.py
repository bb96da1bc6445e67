"""The app under faults (AppTest, real files, real jobs): corrupt run files break one run, not a
page; names from the URL or a form never reach outside the runs folder; a NaN checkpoint is named
on its card; the queue and the live view survive dead runs and an app restart."""

import json
import os
import shutil
import socket
import time

import pytest
import torch
from conftest import ROOT, run_cli, wait_for_state
from streamlit.testing.v1 import AppTest

from app.jobs import run_path
from pof.runs.run import Run


def _app(page: str | None = None, run: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    if run is not None:
        at.query_params["run"] = run
    at.run()
    return at.switch_page(page).run() if page else at


def _texts(at) -> str:
    """Everything the page said in boxes and captions, as one string."""
    return "\n".join(
        e.value
        for kind in ("error", "warning", "info", "success", "caption")
        for e in getattr(at, kind)
    )


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- one bad file is one broken run ---------------------------------------------------------------


@pytest.fixture(scope="module")
def good_runs(tmp_path_factory):
    """A tiny pre-training and a post-training of it, finished for real."""
    root = tmp_path_factory.mktemp("good")
    run_cli(
        "pretrain",
        "--dataset",
        "digits",
        "--arch-arg",
        "width=4",
        "--epochs",
        "1",
        "--out",
        root / "base",
        "--quiet",
        check=0,
    )
    run_cli(
        "post-train",
        root / "base/checkpoints/final.safetensors",
        "--epochs",
        "2",
        "--lr",
        "0.01",
        "--out",
        root / "post",
        "--quiet",
        check=0,
    )
    return root


@pytest.fixture
def damaged(good_runs, runs_root):
    """The good runs, and copies of the post-training with a truncated status.json, a garbage
    config.json, and a corrupt line in the middle of metrics.jsonl."""
    for name in ("base", "post"):
        shutil.copytree(good_runs / name, runs_root / name)
    for name in ("trunc", "garbage", "badline"):
        shutil.copytree(good_runs / "post", runs_root / name)
    status = runs_root / "trunc" / "status.json"
    status.write_bytes(status.read_bytes()[:25])
    (runs_root / "garbage" / "config.json").write_text("{garbage")
    lines = (runs_root / "badline" / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines.insert(len(lines) // 2, '{"kind": "epoch", "epo\n')
    (runs_root / "badline" / "metrics.jsonl").write_text("".join(lines))
    return runs_root


def test_runs_page_lists_broken_runs_with_the_reason_next_to_the_good_ones(damaged):
    at = _app("views/runs.py")
    assert not at.exception
    table = at.dataframe[0].value
    rows = {
        os.path.basename(r): (s, e)
        for r, s, e in zip(table["run"], table["state"], table["error"], strict=True)
    }
    assert set(rows) == {"base", "post", "trunc", "garbage", "badline"}
    assert rows["base"][0] == rows["post"][0] == rows["badline"][0] == "done"
    assert rows["trunc"][0] == "broken" and "status.json" in rows["trunc"][1]
    assert rows["garbage"][0] == "broken" and "config.json" in rows["garbage"][1]
    at.selectbox[-1].set_value(
        str(damaged / "trunc")
    ).run()  # watching the broken run: its state, no traceback
    assert not at.exception and any(
        "broken" in e.value and "status.json" in e.value for e in at.error
    )
    at.selectbox[-1].set_value(str(damaged / "garbage")).run()
    assert not at.exception and any("config.json" in e.value for e in at.error)


def test_post_train_page_names_the_broken_run_and_offers_the_good_ones(damaged):
    at = _app()
    assert not at.exception and at.metric  # the default model's card
    at.radio[0].set_value("my runs").run()
    assert not at.exception
    assert set(at.selectbox[0].options) == {
        "base",
        "post",
        "trunc",
        "badline",
    }  # trunc's config and checkpoint are fine
    assert any("garbage" in w.value and "config.json" in w.value for w in at.warning)
    at = _app(run="trunc")  # watching it from the URL
    assert not at.exception and any(
        "trunc" in e.value and "status.json" in e.value for e in at.error
    )
    at = _app(run="badline")
    assert not at.exception and any(m.label == "test accuracy" for m in at.metric)


def test_compare_page_names_the_broken_run_and_still_compares_the_good_ones(damaged):
    at = _app("views/compare.py")
    assert not at.exception
    assert any("garbage" in w.value and "config.json" in w.value for w in at.warning)
    assert {os.path.basename(p) for p in at.selectbox[0].options} == {"post", "trunc", "badline"}
    at.selectbox[0].set_value(str(damaged / "badline")).run()
    assert not at.exception and at.get("plotly_chart")  # its curves, the corrupt line skipped
    at.selectbox[0].set_value(str(damaged / "trunc")).run()
    assert not at.exception and any("trunc (broken)" in w.value for w in at.warning)


# --- names from the URL and forms stay inside the runs folder -------------------------------------


@pytest.fixture
def elsewhere(tmp_path, runs_root):
    """A folder outside the runs folder that looks like a live run, and a link to it inside."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "status.json").write_text(
        json.dumps(
            {
                "state": "running",
                "pid": os.getpid(),
                "created": time.time(),
                "heartbeat": time.time(),
                "host": socket.gethostname(),
            }
        )
    )
    (folder / "log.txt").write_text("SECRET LOG LINE\n")
    runs_root.mkdir()
    (runs_root / "link").symlink_to(folder)
    return folder


BAD_NAMES = [
    "../elsewhere",
    "/etc",
    "link",
    "a" * 5000,
    "x\x00y",
    "",
    "..",
    ".slots",
    "a//b",
    "x\ny",
]


@pytest.mark.parametrize(
    "name",
    BAD_NAMES,
    ids=[
        "dotdot",
        "absolute",
        "symlink-out",
        "5000-chars",
        "nul",
        "empty",
        "dotdot-alone",
        "hidden",
        "empty-part",
        "newline",
    ],
)
def test_run_path_refuses_every_name_that_could_leave_the_runs_folder(runs_root, elsewhere, name):
    with pytest.raises(ValueError, match="run name"):
        run_path(runs_root, name)


def test_run_path_accepts_plain_and_nested_names(runs_root):
    assert run_path(runs_root, "digits-sgd_1.5") == runs_root.resolve() / "digits-sgd_1.5"
    assert run_path(runs_root, "group/run") == runs_root.resolve() / "group" / "run"


def test_a_crafted_run_in_the_url_is_refused_and_nothing_outside_is_read_or_written(
    runs_root, elsewhere, tmp_path
):
    before = _files(tmp_path)
    for name in ["../elsewhere", str(elsewhere), "link", "a" * 5000, "x\x00y"]:
        at = _app(run=name)
        assert not at.exception, name
        assert any("refused" in e.value for e in at.error), name
        assert "SECRET" not in "".join(c.value for c in at.code) and not any(
            b.label == "Cancel" for b in at.button
        )
    assert _files(tmp_path) == before  # no cancel file, no folder, nothing
    run_cli(
        "pretrain",
        "--dataset",
        "digits",
        "--arch-arg",
        "width=4",
        "--epochs",
        "1",
        "--out",
        runs_root / "p",
        "--quiet",
        check=0,
    )
    run_cli(
        "post-train",
        runs_root / "p/checkpoints/final.safetensors",
        "--epochs",
        "1",
        "--out",
        runs_root / "q",
        "--quiet",
        check=0,
    )
    at = _app("views/compare.py", run="../elsewhere")  # the Compare page reads ?run= too
    assert not at.exception and any("refused" in e.value for e in at.error)
    assert at.selectbox[0].value == str(runs_root / "q")


@pytest.mark.parametrize("name", ["../x", "/tmp/abs-run", "a" * 5000, "two words"])
def test_runs_page_refuses_a_run_name_outside_the_runs_folder(runs_root, tmp_path, name):
    runs_root.mkdir()
    before = _files(tmp_path)
    at = _app("views/runs.py")
    at.selectbox[0].set_value("moons")
    at.selectbox[1].set_value("mlp")
    at.text_input[0].set_value(name)
    at.button[0].click().run()
    assert not at.exception and "Run name refused" in at.error[0].value and not at.success
    assert _files(tmp_path) == before and not os.path.exists("/tmp/abs-run")


# --- a checkpoint with NaN weights ----------------------------------------------------------------


@pytest.fixture
def nan_checkpoint(tmp_path):
    from pof.models.catalogue import bundled
    from pof.models.checkpoints import save_checkpoint
    from pof.models.loading import load_checkpoint

    model, meta = load_checkpoint(bundled()["digits-cnn-small-sgd"]["path"])
    with torch.no_grad():
        model.classifier.weight[0, 0] = float("nan")
    assert meta["metrics"]["test_acc"] > 0.9  # the recorded accuracy that must not be shown
    return save_checkpoint(tmp_path / "nan.safetensors", model, meta)


def test_post_train_card_says_a_checkpoint_holds_nan_weights_and_start_is_disabled(
    runs_root, nan_checkpoint
):
    at = _app()
    at.radio[0].set_value("a checkpoint file").run()
    at.text_input[0].set_value(str(nan_checkpoint)).run()
    assert not at.exception
    assert any(
        "NaN or infinite weights" in e.value and "classifier.weight" in e.value for e in at.error
    )
    assert {m.label: m.value for m in at.metric}["test accuracy"] == "invalid: NaN/inf weights"
    start = next(b for b in at.button if b.label == "Start")
    assert start.disabled


def test_inspect_card_says_a_checkpoint_holds_nan_weights_and_offers_nothing_to_compute(
    runs_root, nan_checkpoint
):
    at = _app("views/inspect.py")
    next(r for r in at.radio if r.label == "Checkpoint A from").set_value(
        "a path on this server"
    ).run()
    next(t for t in at.text_input if t.label == "Path of the model file").set_value(
        str(nan_checkpoint)
    ).run()
    assert not at.exception
    assert any("NaN or infinite weights" in e.value for e in at.error)
    assert {m.label: m.value for m in at.metric}[
        "test accuracy (measured)"
    ] == "invalid: NaN/inf weights"
    assert not any(b.label.startswith("Compute") for b in at.button)


# --- jobs: a dead run never holds up the queue, and a restart keeps watching ----------------------


def test_a_dead_and_a_broken_run_do_not_hold_up_a_job_started_from_the_app(runs_root):
    old = time.time() - 3600
    for name in (
        "stuck",
        "broken",
    ):  # stuck: what a command that failed after creating its folder leaves
        (runs_root / name).mkdir(parents=True)
        (runs_root / name / "status.json").write_text(
            json.dumps(
                {
                    "state": "queued",
                    "progress": 0.0,
                    "created": old,
                    "heartbeat": old,
                    "host": socket.gethostname(),
                }
            )
        )
    (runs_root / "broken" / "status.json").write_text('{"state": "queu')
    at = _app("views/runs.py")
    at.number_input[0].set_value(1)
    at.text_input[0].set_value("fresh")
    at.button[0].click().run()
    assert not at.exception and "Started fresh" in at.success[0].value
    assert (
        wait_for_state(Run(runs_root / "fresh"), ("done", "failed"), timeout=120)["state"] == "done"
    )
    at = _app("views/runs.py")
    for name in ("stuck", "broken"):  # each shown as what it is, never as waiting
        at.selectbox[-1].set_value(str(runs_root / name)).run()
        assert not at.exception and not at.get("progress") and at.error, name


def test_a_restarted_app_keeps_showing_a_running_job_live(runs_root):
    at = _app("views/runs.py")
    at.number_input[0].set_value(5000)
    at.text_input[0].set_value("long")
    at.button[0].click().run()
    run = Run(runs_root / "long")
    try:
        wait_for_state(run, ("running",), timeout=120)
        del at  # the app is gone; a new session knows the job only from its folder
        for again in (_app(run="long"), _app("views/runs.py")):
            assert not again.exception
            texts = [p.proto.text for p in again.get("progress")]
            assert len(texts) == 1 and texts[0].startswith("running: "), texts
            assert any(b.label == "Cancel" for b in again.button)
        assert run.status()["pid"] and run.status()["state"] == "running"
    finally:
        run.request_cancel()
        wait_for_state(run, ("cancelled", "failed"), timeout=60)
