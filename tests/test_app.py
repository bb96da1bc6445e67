"""The app's pages through Streamlit's AppTest (no browser), with real run folders and jobs."""
import time

import pytest
from streamlit.testing.v1 import AppTest

from app.figures import training_curves
from conftest import ROOT, run_cli
from pof.runs import Run


@pytest.fixture
def runs_root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    monkeypatch.setenv("POF_RUNS", str(root))
    return root


def _app():
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    return at.run()


def test_empty_runs_page_offers_the_pretrain_form_with_defaults(runs_root):
    at = _app()
    assert not at.exception
    assert at.title[0].value == "Runs"
    assert [s.label for s in at.selectbox] == ["Dataset", "Model", "Optimizer"]
    assert at.selectbox[0].value == "digits" and at.selectbox[1].value == "cnn-small"
    assert at.number_input[0].value == 30 and at.text_input[0].value == ""
    assert "No runs yet" in at.info[0].value


def test_start_creates_a_run_folder_and_a_background_job(runs_root):
    at = _app()
    at.number_input[0].set_value(2)
    at.text_input[0].set_value("quick")
    at.button[0].click().run()
    assert not at.exception and "Started quick" in at.success[0].value
    run = Run(runs_root / "quick")
    t0 = time.time()
    while run.status().get("state") != "done":
        assert time.time() - t0 < 120, run.status()
        time.sleep(0.5)
    assert run.epochs()[-1]["epoch"] == 2
    at = _app()  # a fresh page finds the finished job on disk
    assert any("done in" in s.value for s in at.success)
    assert at.metric[0].value == "2"


def test_bad_combinations_and_occupied_names_are_refused(runs_root):
    run_cli("pretrain", "--dataset", "digits", "--epochs", "1", "--out", runs_root / "taken", "--quiet", check=0)
    at = _app()
    at.selectbox[0].set_value("moons")
    at.selectbox[1].set_value("resnet20")
    at.button[0].click().run()
    assert "needs images" in at.error[0].value
    at.selectbox[1].set_value("mlp")
    at.text_input[0].set_value("taken")
    at.button[0].click().run()
    assert "already holds a run" in at.error[0].value


def test_training_curves_figure_has_train_and_test_traces():
    epochs = [{"epoch": 0, "test_loss": 2.3, "test_acc": 0.1},
              {"epoch": 1, "train_loss": 1.0, "train_acc": 0.6, "test_loss": 1.1, "test_acc": 0.55}]
    fig = training_curves(epochs)
    names = [t.name for t in fig.data]
    assert names == ["train loss", "train accuracy", "test loss", "test accuracy"]
    assert list(fig.data[2].y) == [2.3, 1.1] and list(fig.data[0].x) == [1]


def test_training_curves_prefer_the_clean_train_evaluation_of_post_training():
    epochs = [{"epoch": 0, "test_loss": 0.5, "test_acc": 0.8, "train_eval_loss": 0.4, "train_eval_acc": 0.85},
              {"epoch": 1, "train_loss": 0.9, "train_acc": 0.7, "train_eval_loss": 0.3, "train_eval_acc": 0.9,
               "test_loss": 0.45, "test_acc": 0.82}]
    fig = training_curves(epochs)
    assert list(fig.data[0].y) == [0.4, 0.3] and list(fig.data[0].x) == [0, 1]


@pytest.fixture(scope="module")
def finished_pof_run(tmp_path_factory):
    """A pre-trained model, a short PoF post-training of it, and a small comparison report."""
    root = tmp_path_factory.mktemp("runs")
    run_cli("pretrain", "--dataset", "digits", "--epochs", "2", "--arch-arg", "width=8", "--out", root / "base",
            "--quiet", check=0)
    run_cli("post-train", root / "base/checkpoints/final.safetensors", "--epochs", "1", "--lr", "0.01",
            "--out", root / "pof", "--quiet", check=0)
    import subprocess
    import sys
    subprocess.run([sys.executable, "-m", "analysis", "report", str(root / "pof"), "--samples", "200", "--probes", "5",
                    "--density-steps", "10", "--steps-1d", "5", "--steps-2d", "3", "--eval-samples", "100", "--quiet"],
                   cwd=ROOT, check=True, timeout=600)
    return root


def test_post_train_form_starts_a_pof_job_from_a_finished_run(finished_pof_run, monkeypatch, tmp_path):
    import shutil
    root = tmp_path / "runs"
    shutil.copytree(finished_pof_run / "base", root / "base")
    monkeypatch.setenv("POF_RUNS", str(root))
    at = _app()
    labels = [s.label for s in at.selectbox]
    assert "Checkpoint" in labels and "Method" in labels
    method = at.selectbox[labels.index("Method")]
    assert method.value == "pof" and method.options == ["pof", "finetune-frozen", "finetune", "sam", "random-direction"]
    epochs = [n for n in at.number_input if n.label == "Epochs"][1]
    epochs.set_value(1)
    [b for b in at.button if b.label == "Start post-training"][0].click().run()
    assert not at.exception and any("Started base-pof-0" in s.value for s in at.success)
    run = Run(root / "base-pof-0")
    t0 = time.time()
    while run.status().get("state") != "done":
        assert time.time() - t0 < 120, run.status()
        time.sleep(0.5)
    assert run.config()["method"] == "pof" and run.metrics("step")[0]["eta_star"] > 0


def test_compare_page_shows_every_chart_of_a_computed_report(finished_pof_run, monkeypatch):
    monkeypatch.setenv("POF_RUNS", str(finished_pof_run))
    at = _app()
    at.switch_page("views/compare.py").run()
    assert not at.exception and at.title[0].value == "Compare before and after"
    charts = at.get("plotly_chart")
    assert len(charts) == 7  # curves, hessian bars, density, 1-D slices, 3-D surfaces, contours, interpolation
    assert len(at.get("download_button")) == 14
    assert [b.label for b in at.button] == ["Compute the comparison"]
