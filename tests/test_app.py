"""The app's pages through Streamlit's AppTest (no browser), with real run folders and jobs."""

import time
from pathlib import Path

import pytest
from conftest import ROOT, run_cli, wait_for_state
from streamlit.testing.v1 import AppTest

from app.figures.training import training_curves
from pof.runs.run import Run


def _app():
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    return at.run()


# --- the Post-train page (the default) ------------------------------------------------------------


def test_default_page_offers_the_bundled_digits_model_with_its_card_and_the_paper_defaults(
    runs_root,
):
    at = _app()
    assert not at.exception and at.title[0].value == "Post-train a model with PoF"
    model = at.selectbox[0]
    assert model.label == "Pretrained model" and model.value == "digits-cnn-small-sgd"
    card = {m.label: m.value for m in at.metric}
    assert (
        card["architecture"] == "cnn-small"
        and card["parameters"] == "94,186"
        and card["trained on"] == "digits"
    )
    assert float(card["test accuracy"].rstrip("%")) > 95
    assert any("Linear 128 -> 10" in c.value for c in at.caption)  # which layer is the classifier
    dataset = at.selectbox[1]
    assert dataset.label == "Dataset" and dataset.options == ["digits", "image folder ..."]
    assert any(
        "Not offered: moons, circles, spirals (inputs are (2,)" in c.value for c in at.caption
    )
    values = {n.label: n.value for n in at.number_input}
    assert values == {
        "Epochs": 10,
        "Learning rate": 0.05 * 0.2**4,
        "Weak batch size": 256,
        "gamma max": 2.0,
        "Seed": 0,
    }
    assert at.selectbox[2].value == "pof"


def test_a_two_d_model_is_offered_only_the_two_d_sets_and_a_foreign_image_folder_is_refused(
    runs_root, tmp_path
):
    from PIL import Image

    for split in ("train", "test"):
        for c in ("a", "b"):
            (tmp_path / "imgs" / split / c).mkdir(parents=True)
            Image.new("RGB", (16, 16)).save(tmp_path / "imgs" / split / c / "0.png")
    at = _app()
    at.selectbox[0].set_value("moons-mlp").run()
    assert at.selectbox[1].options == ["moons", "circles", "spirals", "image folder ..."]
    at.selectbox[1].set_value("image folder ...").run()
    at.text_input[0].set_value(str(tmp_path / "imgs")).run()
    assert (
        "does not fit this model: inputs are (3, 16, 16), the model expects (2,)"
        in at.error[0].value
    )
    assert at.button[0].disabled  # Start


def test_a_checkpoint_file_that_is_not_one_is_refused_with_the_reason(runs_root, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    at = _app()
    at.radio[0].set_value("a checkpoint file").run()
    at.text_input[0].set_value(str(bad)).run()
    assert (
        "cannot be used" in at.error[0].value
        and "not a model file this tool reads" in at.error[0].value
    )


def test_start_post_trains_the_default_model_in_a_background_job(runs_root):
    at = _app()
    next(n for n in at.number_input if n.label == "Epochs").set_value(1)
    at.button[0].click().run()
    assert not at.exception
    run = Run(runs_root / "digits-cnn-small-sgd-pof-0")
    assert run.status()["state"] in ("queued", "running", "done")  # the page returned at once
    assert any(s.value.startswith("3 · Watch") for s in at.subheader)
    wait_for_state(run)
    cfg = run.config()
    assert cfg["method"] == "pof" and cfg["dataset"] == "digits" and cfg["epochs"] == 1
    assert run.metrics("step")[0]["eta_star"] > 0
    at.button[0].click().run()  # the same again: a fresh folder, not a clash
    assert (runs_root / "digits-cnn-small-sgd-pof-0-2" / "status.json").exists()
    Run(runs_root / "digits-cnn-small-sgd-pof-0-2").request_cancel()


# --- the Runs page --------------------------------------------------------------------------------


def _runs_page():
    return _app().switch_page("views/runs.py").run()


def test_empty_runs_page_offers_the_pretrain_form_with_defaults(runs_root):
    at = _runs_page()
    assert not at.exception
    assert at.title[0].value == "Runs"
    assert [s.label for s in at.selectbox] == ["Dataset", "Model", "Optimizer"]
    assert at.selectbox[0].value == "digits" and at.selectbox[1].value == "cnn-small"
    assert at.number_input[0].value == 30 and at.text_input[0].value == ""
    assert "No runs yet" in at.info[0].value


def test_pretrain_start_creates_a_run_folder_and_a_background_job(runs_root):
    at = _runs_page()
    at.number_input[0].set_value(2)
    at.text_input[0].set_value("quick")
    at.button[0].click().run()
    assert not at.exception and "Started quick" in at.success[0].value
    run = Run(runs_root / "quick")
    wait_for_state(run)
    assert run.epochs()[-1]["epoch"] == 2
    at = _runs_page()  # a fresh page finds the finished job on disk
    assert any("done in" in s.value for s in at.success)
    assert at.metric[0].value == "2"


def test_the_pretrain_form_starts_a_tracked_job_when_its_box_is_ticked(runs_root):
    at = _runs_page()
    assert not [n for n in at.number_input if n.label == "Probe subset"]
    next(c for c in at.checkbox if c.label == "Track curvature").check().run()
    fields = {n.label: n for n in at.number_input}
    fields["Epochs"].set_value(1)
    fields["Steps between points"].set_value(4)
    fields["Probe subset"].set_value(64)
    at.text_input[0].set_value("tracked")
    next(b for b in at.button if b.label == "Start").click().run()
    assert not at.exception and "Started tracked" in at.success[0].value
    run = Run(runs_root / "tracked")
    wait_for_state(run)
    tracking = run.config()["config"]["tracking"]
    assert tracking == {"track": True, "track_every": 4, "track_samples": 64, "track_probes": 8}
    assert [p["step"] for p in run.curvature()] == [0, 4, 8, 11]  # 1347 images: 11 batches


def test_bad_combinations_and_occupied_names_are_refused(runs_root):
    run_cli(
        "pretrain",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--out",
        runs_root / "taken",
        "--quiet",
        check=0,
    )
    at = _runs_page()
    at.selectbox[0].set_value("moons")
    at.selectbox[1].set_value("resnet20")
    at.button[0].click().run()
    assert "needs images" in at.error[0].value
    at.selectbox[1].set_value("mlp")
    at.text_input[0].set_value("taken")
    at.button[0].click().run()
    assert "already holds a run" in at.error[0].value


def test_training_curves_figure_has_train_and_test_traces():
    epochs = [
        {"epoch": 0, "test_loss": 2.3, "test_acc": 0.1},
        {"epoch": 1, "train_loss": 1.0, "train_acc": 0.6, "test_loss": 1.1, "test_acc": 0.55},
    ]
    fig = training_curves(epochs)
    names = [t.name for t in fig.data]
    assert names == ["train loss", "train accuracy", "test loss", "test accuracy"]
    assert list(fig.data[2].y) == [2.3, 1.1] and list(fig.data[0].x) == [1]


def test_training_curves_prefer_the_clean_train_evaluation_of_post_training():
    epochs = [
        {
            "epoch": 0,
            "test_loss": 0.5,
            "test_acc": 0.8,
            "train_eval_loss": 0.4,
            "train_eval_acc": 0.85,
        },
        {
            "epoch": 1,
            "train_loss": 0.9,
            "train_acc": 0.7,
            "train_eval_loss": 0.3,
            "train_eval_acc": 0.9,
            "test_loss": 0.45,
            "test_acc": 0.82,
        },
    ]
    fig = training_curves(epochs)
    assert list(fig.data[0].y) == [0.4, 0.3] and list(fig.data[0].x) == [0, 1]


@pytest.fixture(scope="module")
def finished_pof_run(tmp_path_factory):
    """A pre-trained model, PoF and a control post-trained from it, and a small comparison of
    each."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("runs")
    run_cli(
        "pretrain",
        "--dataset",
        "digits",
        "--epochs",
        "2",
        "--arch-arg",
        "width=8",
        "--out",
        root / "base",
        "--quiet",
        check=0,
    )
    for method in ("pof", "finetune-frozen"):
        run_cli(
            "post-train",
            root / "base/checkpoints/final.safetensors",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--method",
            method,
            "--out",
            root / method,
            "--quiet",
            check=0,
        )
        subprocess.run(
            [
                sys.executable,
                "-m",
                "analysis",
                "report",
                str(root / method),
                "--samples",
                "200",
                "--probes",
                "5",
                "--density-steps",
                "10",
                "--steps-1d",
                "5",
                "--steps-2d",
                "3",
                "--eval-samples",
                "100",
                "--quiet",
            ],
            cwd=ROOT,
            check=True,
            timeout=600,
        )
    return root


def _compare_page():
    return _app().switch_page("views/compare.py").run()


def test_compare_page_shows_every_chart_of_a_computed_report_instantly(
    finished_pof_run, monkeypatch
):
    monkeypatch.setenv("POF_RUNS", str(finished_pof_run))
    at = _compare_page()
    assert not at.exception and at.title[0].value == "Compare before and after"
    at.selectbox[0].set_value(str(finished_pof_run / "pof")).run()
    charts = at.get("plotly_chart")
    assert (
        len(charts) == 7
    )  # curves, per layer, hessian bars, density, 1-D slices, contours, interpolation
    assert (
        len(at.get("download_button")) == 15
    )  # HTML and JSON of each, and the per-layer table as CSV
    assert [t.label for t in at.tabs] == [
        "contour maps",
        "3-D surfaces",
    ]  # surfaces: drawn when opened
    assert not any(
        b.label.startswith("Compute") and "curvature" not in b.label for b in at.button
    )  # all cached: nothing to compute
    import json

    curves = json.loads(charts[0].proto.spec)
    assert {t["name"] for t in curves["data"]} == {"pof (pof)", "finetune-frozen (finetune-frozen)"}
    hessian = json.loads(charts[2].proto.spec)
    assert {t["name"] for t in hessian["data"]} == {"before", "after"}
    layers = json.loads(charts[1].proto.spec)  # the per-layer view of the same before and after
    assert {t["name"] for t in layers["data"] if t["type"] == "scatter"} == {
        "before",
        "after",
        "before: whole network",
        "after: whole network",
        "indistinguishable from 1 (± 2 se)",  # the ratio panel's band
    }


def test_compare_page_overlays_a_control_run_of_the_same_checkpoint(finished_pof_run, monkeypatch):
    import json

    monkeypatch.setenv("POF_RUNS", str(finished_pof_run))
    at = _compare_page()
    at.selectbox[0].set_value(str(finished_pof_run / "pof")).run()
    control = at.selectbox[1]
    assert control.label.startswith("Control run") and control.options[1].endswith(
        "(finetune-frozen)"
    )
    control.set_value(str(finished_pof_run / "finetune-frozen")).run()
    assert not at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert {t["name"] for t in charts[2]["data"]} == {"before", "after", "after, finetune-frozen"}
    assert len([t for t in charts[5]["data"] if t["type"] == "contour"]) == 3


def test_compare_page_starts_one_background_job_per_missing_analysis(
    finished_pof_run, monkeypatch, tmp_path
):
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(
        finished_pof_run / "pof", root / "pof", ignore=shutil.ignore_patterns("analysis")
    )
    monkeypatch.setenv("POF_RUNS", str(root))
    at = _compare_page()
    assert len(at.get("plotly_chart")) == 1  # the curves; no analysis yet
    # before Compute: how long the per-layer part will take, timed on the run's own model
    (estimate,) = [c.value for c in at.caption if c.value.startswith("Per layer: about")]
    assert "for each of 2 checkpoints" in estimate and "measured here on 64 samples" in estimate
    # the sample counts, changed as Compute is clicked (one rerun): the jobs are started with them
    next(n for n in at.number_input if n.label.startswith("Training samples")).set_value(200)
    next(n for n in at.number_input if n.label.startswith("Test samples")).set_value(300)
    next(c for c in at.checkbox if c.label == "Per layer: traces only").check()
    next(b for b in at.button if b.label == "Compute 5 analyses").click().run()
    assert not at.exception
    jobs = [
        Run(root / "pof" / "analysis" / p)
        for p in ("layers", "hessian", "landscape-1d", "landscape-2d", "interpolation")
    ]
    assert all(j.status()["state"] in ("queued", "running", "done") for j in jobs)
    for j in jobs:  # each job's own command line (its pid is the queue's, then the command's)
        argv = Path(f"/proc/{j.status()['pid']}/cmdline").read_bytes().decode().split("\0")
        assert argv[argv.index("--samples") + 1] == "200", argv
        assert argv[argv.index("--eval-samples") + 1] == "300", argv
        assert "--layer-traces-only" in argv, argv
    texts = [p.proto.text for p in at.get("progress")]
    assert len(texts) == 5 and texts[0].startswith("Per-layer sharpness")
    for j in jobs:
        j.request_cancel()
    from analysis.compare import load_report

    for j in jobs:
        status = wait_for_state(j, ("cancelled", "done"))
        # a cancelled part leaves no result; a part that finished first leaves a readable one
        assert (j.path / "result.json").exists() == (status["state"] == "done"), status
    finished = {j.path.name for j in jobs if j.status()["state"] == "done"}
    assert set(load_report(root / "pof")) == finished


def test_runs_page_shows_a_queued_job_waiting_for_the_running_one(runs_root):
    from app.jobs import start_job

    for name, epochs in (("long", 5000), ("next", 1)):
        start_job(
            runs_root / name,
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
                str(runs_root / name),
                "--quiet",
            ],
            runs_root,
        )
        wait_for_state(Run(runs_root / name), ("running",) if name == "long" else ("queued",))
    at = _runs_page()
    assert at.selectbox[-1].value == str(runs_root / "next")  # the newest job is shown first
    # behind what: the running job's kind, model and start time
    started = time.strftime("%H:%M", time.localtime(Run(runs_root / "long").status()["started"]))
    assert [p.proto.text for p in at.get("progress")] == [
        f"queued behind pretrain on mlp (started {started})"
    ]
    next(b for b in at.button if b.label == "Cancel").click().run()
    assert (
        wait_for_state(Run(runs_root / "next"), ("cancelled",))["error"]
        == "cancelled while waiting in the queue"
    )
    Run(runs_root / "long").request_cancel()
    wait_for_state(Run(runs_root / "long"), ("cancelled",))


def test_results_of_an_overwritten_checkpoint_are_not_shown_as_its_own(
    finished_pof_run, monkeypatch, tmp_path
):
    import os
    import shutil

    root = tmp_path / "runs"
    shutil.copytree(finished_pof_run / "pof", root / "pof")  # the same bytes: still its own
    monkeypatch.setenv("POF_RUNS", str(root))
    assert len(_compare_page().get("plotly_chart")) == 7
    checkpoints = root / "pof" / "checkpoints"
    final = checkpoints / "final.safetensors"
    # touched, same bytes: results are keyed by content, so they are still its own
    os.utime(final, ns=(final.stat().st_atime_ns, final.stat().st_mtime_ns + 10**9))
    assert len(_compare_page().get("plotly_chart")) == 7
    # overwritten with other weights, as a re-run would
    shutil.copyfile(checkpoints / "initial.safetensors", final)
    at = _compare_page()
    assert len(at.get("plotly_chart")) == 1 and any(
        b.label == "Compute 5 analyses" for b in at.button
    )


def test_a_run_trained_on_an_image_folder_is_offered_that_folder_without_a_download_warning(
    runs_root, tmp_path
):
    from PIL import Image

    folder = tmp_path / "imgs"
    for split in ("train", "test"):
        for c in range(3):
            (folder / split / f"c{c}").mkdir(parents=True)
            for i in range(4):
                Image.new("L", (8, 8), color=40 * c + i).save(folder / split / f"c{c}" / f"{i}.png")
    run_cli(
        "pretrain",
        "--dataset",
        f"imagefolder:{folder}",
        "--model",
        "mlp",
        "--epochs",
        "1",
        "--out",
        runs_root / "mine",
        "--quiet",
        check=0,
    )
    at = _app()
    at.radio[0].set_value("my runs").run()
    assert not at.exception and at.selectbox[0].label == "Finished run or imported model"
    assert at.selectbox[1].options == [f"imagefolder:{folder.resolve()}", "image folder ..."]
    assert not at.warning
    assert any(
        "digits (10 classes, the model has 3 outputs)" in c.value for c in at.caption
    )  # same shape
