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
