"""Curvature over time: a training job's series checked against a cold analysis of its saved
weights, tracking that never changes training, a kill and resume that record the same series, and
bad input refused before any folder is made."""

import hashlib
import json
import re
import signal
from pathlib import Path

import pytest
import torch
from conftest import ROOT, run_cli
from interrupt import killed_before_step
from torch import nn

from pof.config import PostTrainConfig, TrackConfig
from pof.curvature.lanczos import top_eigenvalues
from pof.curvature.lastlayer import features_and_probs, last_layer_hessian
from pof.curvature.operators import HessianOperator
from pof.curvature.tracker import Tracker, stability_threshold
from pof.data.batches import Batches
from pof.data.load import load_dataset
from pof.models.loading import load_checkpoint
from pof.runs.run import Run
from pof.training.posttrain import post_train
from pof.validate import ConfigError

DIGITS = ROOT / "assets" / "digits-cnn-small-sgd.safetensors"
# digits: 1347 training images in batches of 64 = 22 steps an epoch; a point every 11 steps
POST = ["post-train", DIGITS, "--method", "pof", "--epochs", "2", "--batch-size", "64"]
POST += ["--lr", "0.02", "--save-every", "1", "--quiet"]
TRACK = ["--track", "--track-every", "11", "--track-samples", "200", "--track-probes", "6"]
NOT_TIMES = ("time", "seconds")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    run_cli(*POST, *TRACK, "--out", root / "tracked", check=0)
    run_cli(*POST, "--out", root / "plain", check=0)
    return Run(root / "tracked"), Run(root / "plain")


def _weights(path):
    return load_checkpoint(path)[0].state_dict()


def _same_numbers(a: dict, b: dict) -> bool:
    return {k: v for k, v in a.items() if k not in NOT_TIMES} == {
        k: v for k, v in b.items() if k not in NOT_TIMES
    }


@pytest.mark.slow
def test_tracking_never_changes_training(runs):
    tracked, plain = runs
    wa, wb = _weights(tracked.checkpoint("final")), _weights(plain.checkpoint("final"))
    assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)
    steps_a, steps_b = tracked.metrics("step"), plain.metrics("step")
    assert len(steps_a) == len(steps_b) == 44
    assert all(_same_numbers(a, b) for a, b in zip(steps_a, steps_b, strict=True))
    drop = (*NOT_TIMES, "epoch_time")
    for a, b in zip(tracked.epochs(), plain.epochs(), strict=True):
        assert {k: v for k, v in a.items() if k not in drop} == {
            k: v for k, v in b.items() if k not in drop
        }
    assert plain.curvature() == [] and plain.curvature_setup() is None


@pytest.mark.slow
def test_the_series_is_recorded_at_its_cadence_with_the_rate_in_force(runs):
    tracked, _ = runs
    points, setup = tracked.curvature(), tracked.curvature_setup()
    assert [p["step"] for p in points] == [0, 11, 22, 33, 44]
    assert setup["every"] == 11 and setup["samples"] == len(setup["probe_indices"]) == 200
    assert setup["classifier"] and setup["missing_last_layer"] is None
    assert "Nesterov" in setup["threshold_rule"]
    for p in points:
        assert p["lr"] == 0.02 and p["epoch"] == p["step"] / 22
        assert p["threshold"] == pytest.approx(stability_threshold(0.02, 0.9, True, 5e-4))
        assert p["warm"] == (p["step"] > 0) and p["top_converged"]
        assert p["hvp"] == p["lanczos_steps"] + 1 + 6  # Lanczos, its residual, the trace probes
        # every layer's trace comes from the same probes: they add up to the whole trace
        assert sum(layer["trace"] for layer in p["layers"]) == pytest.approx(p["trace"], rel=1e-9)
        assert all(layer["trace_stderr"] > 0 for layer in p["layers"])
        assert p["last_layer_top"] > 0 and p["last_layer_trace"] > p["last_layer_top"]


@pytest.mark.slow
@pytest.mark.parametrize("step, checkpoint", [(0, "initial"), (22, "epoch-0001"), (44, "final")])
def test_points_agree_with_a_cold_analysis_of_the_saved_weights(runs, step, checkpoint):
    tracked, _ = runs
    point = next(p for p in tracked.curvature() if p["step"] == step)
    model, meta = load_checkpoint(tracked.checkpoint(checkpoint))
    data = load_dataset("digits")
    idx = torch.tensor(tracked.curvature_setup()["probe_indices"])
    norm = Batches(data.x_train, data.y_train, meta["mean"], meta["std"], 1)
    x, y = norm.normalize(data.x_train[idx]), data.y_train[idx]
    op = HessianOperator(model, [(x, y)])
    cold = top_eigenvalues(op, 1, tol=1e-8, max_steps=300, seed=123)
    op.close()
    assert point["top_eigenvalue"] == pytest.approx(cold.eigenvalues[0], rel=1e-3)
    Ft, P = features_and_probs(model, [(x, y)])
    exact = last_layer_hessian(Ft, P, top_k=1)
    assert point["last_layer_top"] == pytest.approx(exact.top_eigenvalues[0], rel=1e-9)
    assert point["last_layer_trace"] == pytest.approx(exact.trace, rel=1e-9)


@pytest.mark.slow
def test_a_tracked_job_killed_half_way_resumes_to_the_same_series(runs, tmp_path):
    tracked, _ = runs
    out = tmp_path / "broken"
    proc = killed_before_step(22 + 15, *POST, *TRACK, "--out", out)  # in epoch 2
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    broken = Run(out)
    assert [p["step"] for p in broken.curvature()] == [0, 11, 22, 33]
    run_cli("post-train", "--out", out, "--resume", "--quiet", check=0)
    a, b = tracked.curvature(), broken.curvature()
    assert [p["step"] for p in b] == [p["step"] for p in a]
    assert all(_same_numbers(pa, pb) for pa, pb in zip(a, b, strict=True))
    wa, wb = _weights(tracked.checkpoint("final")), _weights(broken.checkpoint("final"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_pretraining_with_sam_is_tracked_and_unchanged_by_it(tmp_path):
    args = ["pretrain", "--optimizer", "sam", "--epochs", "1", "--batch-size", "256"]
    args += ["--quiet", "--no-nesterov"]
    run_cli(*args, "--track", "--track-every", "2", "--out", tmp_path / "a", check=0)
    run_cli(*args, "--out", tmp_path / "b", check=0)
    a, b = Run(tmp_path / "a"), Run(tmp_path / "b")
    wa, wb = _weights(a.checkpoint("final")), _weights(b.checkpoint("final"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    points = a.curvature()
    assert [p["step"] for p in points] == [0, 2, 4, 6]  # 1347 images: 6 steps of 256
    assert a.curvature_setup()["threshold_rule"].startswith("(2+2β)/η, β = 0.9")
    assert all(p["threshold"] == pytest.approx((2 + 1.8) / p["lr"] - 5e-4) for p in points)


@pytest.mark.slow
def test_a_bad_cadence_is_refused_on_the_command_line_before_any_folder(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(*POST, "--track", "--track-every", "0", "--out", out, check=2)
    assert "track_every (steps between curvature points) must be an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr and not out.exists()


@pytest.mark.parametrize(
    "options, says",
    [
        (dict(track_every=-3), "track_every (steps between curvature points) must be"),
        (dict(track_every=2.5), "must be an integer >= 1"),
        (dict(track_samples=0), "track_samples (the probe subset) must be"),
        (dict(track_samples=100000), "use at most 8192"),
        (dict(track_probes=1), "track_probes (Hutchinson probe vectors) must be"),
        (dict(track="yes"), "track must be true or false"),
    ],
)
def test_bad_tracking_options_are_refused_by_name(options, says):
    with pytest.raises(ConfigError, match=re.escape(says)):
        TrackConfig(track=True, **options) if "track" not in options else TrackConfig(**options)
    with pytest.raises(ConfigError, match=re.escape(says)):  # as a saved run's dict
        PostTrainConfig(checkpoint="x", tracking={"track": True, **options})


def test_a_probe_subset_larger_than_the_data_is_refused_before_any_folder(tmp_path):
    cfg = PostTrainConfig(
        checkpoint=str(DIGITS), epochs=1, tracking=TrackConfig(track=True, track_samples=5000)
    )
    with pytest.raises(ConfigError, match="the training set has 1347 examples; use at most 1347"):
        post_train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_probe_subset_larger_than_memory_allows_is_refused_before_any_folder(
    tmp_path, monkeypatch
):
    # a machine with 4 MiB free: the estimate of the products' memory exceeds half of it
    monkeypatch.setattr("pof.training.tracking._available", lambda device: 4 << 20)
    cfg = PostTrainConfig(
        checkpoint=str(DIGITS), epochs=1, tracking=TrackConfig(track=True, track_samples=1000)
    )
    with pytest.raises(ConfigError, match=r"lower track_samples to about \d+"):
        post_train(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_model_without_a_linear_classifier_still_has_its_whole_and_layer_series():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()
    )
    x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    why = "its last layer is a 1x1 convolution, not nn.Linear"
    tracker = Tracker(model, x, y, None, 4, seed=0, missing_last_layer=why)
    p = tracker.point(0, 0.0, 0.1)
    assert p.last_layer_top is None and p.last_layer_trace is None
    assert [layer.name for layer in p.layers] == ["0", "2"] and p.top_eigenvalue > 0
    assert p.threshold == pytest.approx(20.0) and tracker.setup()["missing_last_layer"] == why
    assert model.training  # its mode is given back


@pytest.mark.slow
def test_a_run_written_by_a_newer_version_is_refused_and_left_as_it_was(tmp_path, pof_main):
    out = tmp_path / "newer"
    run_cli(*POST[:4], "--epochs", "1", "--quiet", "--out", out, check=0)
    cfg = json.loads((out / "config.json").read_text())
    cfg["config"]["tracking"]["track_hessian_of"] = "weak batch"  # an option from the future
    cfg["status_note"] = "kept"
    (out / "config.json").write_text(json.dumps(cfg))
    Run(out).set_status("cancelled")

    def digest():
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(out).rglob("*"))
            if p.is_file()
        }

    before = digest()
    # the refusal in this process (conftest.main_in_process), the run above for real
    proc = pof_main("post-train", "--out", out, "--resume", "--quiet", check=2)
    assert "does not know: tracking.track_hessian_of" in proc.stderr
    assert "resume it with that version" in proc.stderr and "Traceback" not in proc.stderr
    assert digest() == before
