"""Real training runs through the real CLI, in subprocesses, on the offline digits data."""

import json
import signal

import torch
from conftest import run_cli
from interrupt import held_before_step, killed_before_step, wait_for_file

from pof.models.loading import load_checkpoint
from pof.runs.run import Run


def _epochs(path):
    return Run(path).epochs()


def test_pretrain_reaches_90_percent_on_digits_and_evaluates(tmp_path):
    out = tmp_path / "digits-sgd"
    proc = run_cli(
        "pretrain",
        "--model",
        "cnn-small",
        "--dataset",
        "digits",
        "--epochs",
        "12",
        "--out",
        out,
        check=0,
    )
    assert "done: test acc" in proc.stdout
    final = _epochs(out)[-1]
    assert final["epoch"] == 12 and final["test_acc"] >= 0.90, final
    names = {p.name for p in (out / "checkpoints").glob("*.safetensors")}
    assert {
        "initial.safetensors",
        "last.safetensors",
        "best.safetensors",
        "final.safetensors",
    } <= names
    ev = run_cli(
        "evaluate",
        out / "checkpoints" / "final.safetensors",
        "--dataset",
        "digits",
        "--json",
        check=0,
    )
    result = json.loads(ev.stdout)["test"]
    assert abs(result["acc"] - final["test_acc"]) < 1e-9 and len(result["per_class_acc"]) == 10
    table = run_cli(
        "evaluate", out / "checkpoints" / "final.safetensors", check=0
    ).stdout  # dataset from metadata
    assert "chosen by registry" in table and "per class" in table
    listing = run_cli("runs", "list", tmp_path, check=0).stdout
    assert "digits-sgd" in listing and "done" in listing and "12/12" in listing
    show = json.loads(run_cli("runs", "show", out, "--json", check=0).stdout)
    assert show["status"]["state"] == "done" and show["config"]["config"]["epochs"] == 12
    meta = load_checkpoint(out / "checkpoints" / "final.safetensors")[1]
    assert meta["provenance"]["kind"] == "pretrain" and meta["provenance"]["final_lr"] > 0


def test_sam_pretraining_learns_too(tmp_path):
    out = tmp_path / "sam"
    run_cli(
        "pretrain",
        "--dataset",
        "digits",
        "--optimizer",
        "sam",
        "--rho",
        "0.05",
        "--epochs",
        "8",
        "--schedule",
        "cosine",
        "--out",
        out,
        "--quiet",
        check=0,
    )
    assert _epochs(out)[-1]["test_acc"] >= 0.85
    assert Run(out).config()["config"]["optimizer"] == "sam"


def test_divergence_stops_with_a_clear_status_and_keeps_the_last_good_checkpoint(tmp_path):
    out = tmp_path / "boom"
    proc = run_cli(
        "pretrain", "--dataset", "digits", "--lr", "1e12", "--epochs", "3", "--out", out, "--quiet"
    )
    assert proc.returncode == 1, proc.stderr
    assert "diverged" in proc.stderr and "Lower the learning rate" in proc.stderr
    status = Run(out).status()
    assert status["state"] == "failed" and "diverged" in status["error"]
    model, _ = load_checkpoint(out / "checkpoints" / "initial.safetensors")
    assert all(
        torch.isfinite(p).all() for p in model.state_dict().values() if p.is_floating_point()
    )
    assert not (out / "checkpoints" / "final.safetensors").exists()


def test_bad_input_exits_2_with_a_message(tmp_path, pof_main):
    # the refusals that come after torch is imported run in this process (conftest.main_in_process);
    # an unknown model and --help run for real, as do the pre-training and the refusals of
    # test_faults_input.py
    proc = pof_main(
        "pretrain",
        "--dataset",
        "cifar10",
        "--data-root",
        tmp_path,
        "--out",
        tmp_path / "x",
        "--quiet",
    )
    assert proc.returncode == 2 and "Put cifar-10-python.tar.gz" in proc.stderr
    run_cli(
        "pretrain",
        "--dataset",
        "digits",
        "--epochs",
        "1",
        "--out",
        tmp_path / "r",
        "--quiet",
        check=0,
    )
    proc = pof_main(
        "pretrain", "--dataset", "digits", "--epochs", "1", "--out", tmp_path / "r", "--quiet"
    )
    assert proc.returncode == 2 and "already holds a run" in proc.stderr
    proc = pof_main(
        "evaluate", tmp_path / "r" / "checkpoints" / "final.safetensors", "--dataset", "moons"
    )
    assert proc.returncode == 2 and "10 output classes but moons has 2" in proc.stderr
    assert run_cli("pretrain", "--model", "vgg", "--out", tmp_path / "y").returncode == 2
    helptext = run_cli("pretrain", "--help", check=0).stdout
    for option in ("--optimizer", "--rho", "--milestones", "--augment", "--resume", "--save-every"):
        assert option in helptext


PRETRAIN = ["pretrain", "--dataset", "digits", "--batch-size", "16", "--epochs", "6", "--seed", "1"]
STEPS_PER_EPOCH = 85  # digits' 1347 training images in batches of 16, the last one partial


def test_cancel_stops_cleanly_and_the_run_can_be_resumed(tmp_path):
    out, held = tmp_path / "c", tmp_path / "held"
    # held just before the 3rd step of epoch 2: a cancel cannot arrive after the run has finished
    proc = held_before_step(STEPS_PER_EPOCH + 3, held, *PRETRAIN, "--out", out, "--quiet")
    wait_for_file(held, proc)
    assert [r["epoch"] for r in _epochs(out)] == [0, 1]
    run_cli("runs", "cancel", out, check=0)
    assert proc.wait(timeout=120) == 3
    status = Run(out).status()
    assert status["state"] == "cancelled" and "--resume" in status["message"]
    assert "cancelled during epoch 2" in status["message"]
    assert not (out / "checkpoints" / "final.safetensors").exists()
    (out / "cancel").unlink()
    run_cli("pretrain", "--out", out, "--resume", "--quiet", check=0)
    assert Run(out).status()["state"] == "done" and _epochs(out)[-1]["epoch"] == 6


def test_resume_after_a_kill_reproduces_the_uninterrupted_run(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run_cli(*PRETRAIN, "--out", whole, "--quiet", check=0)
    assert len([r for r in Run(whole).metrics("step") if r["epoch"] == 0]) == STEPS_PER_EPOCH
    # killed in the middle of epoch 3, after epochs 1 and 2 were saved
    proc = killed_before_step(2 * STEPS_PER_EPOCH + 40, *PRETRAIN, "--out", broken, "--quiet")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert [r["epoch"] for r in _epochs(broken)] == [0, 1, 2]
    assert not (broken / "checkpoints" / "final.safetensors").exists()
    assert Run(broken).status()["state"] == "failed"  # dead process detected
    run_cli("pretrain", "--out", broken, "--resume", "--quiet", check=0)
    a, b = _epochs(whole), _epochs(broken)
    assert [r["epoch"] for r in b] == list(range(7))
    for ra, rb in zip(a, b, strict=True):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert ra.get(key) == rb.get(key), (ra, rb)
    ma, _ = load_checkpoint(whole / "checkpoints" / "final.safetensors")
    mb, _ = load_checkpoint(broken / "checkpoints" / "final.safetensors")
    wa, wb = ma.state_dict(), mb.state_dict()
    assert list(wa) == list(wb)
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_a_run_stopped_in_its_first_epoch_resumes_from_its_initial_weights(tmp_path):
    from pof.config import PretrainConfig
    from pof.training.pretrain import pretrain

    cfg = PretrainConfig(dataset="digits", epochs=2, seed=4)
    whole = pretrain(cfg, tmp_path / "whole")
    calls = iter(range(10_000))
    stopped = pretrain(cfg, tmp_path / "stopped", should_stop=lambda: next(calls) >= 3)
    assert stopped.status()["state"] == "cancelled" and not stopped.checkpoint("resume").exists()
    resumed = pretrain(cfg, tmp_path / "stopped", resume=True)
    assert resumed.status()["state"] == "done"
    a, b = _epochs(whole.path)[-1], _epochs(resumed.path)[-1]
    assert a["test_loss"] == b["test_loss"] and a["train_loss"] == b["train_loss"]
