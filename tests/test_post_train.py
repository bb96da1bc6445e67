"""Post-training end to end: the CLI, every method, torchrun with gloo, resume after a kill."""

import os
import shutil
import signal
import subprocess

import pytest
import torch
from conftest import ROOT, run_cli
from interrupt import killed_before_step

from pof.config import METHODS, PretrainConfig
from pof.models.loading import load_checkpoint
from pof.runs.run import Run
from pof.training.pretrain import pretrain


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("pre")
    cnn = pretrain(PretrainConfig(model="cnn-small", dataset="digits", epochs=4), root / "cnn")
    mlp = pretrain(PretrainConfig(model="mlp", dataset="digits", epochs=4, lr=0.2), root / "mlp")
    return {"cnn": cnn.checkpoint("final"), "mlp": mlp.checkpoint("final")}


def _weights(path):
    return load_checkpoint(path)[0].state_dict()


def test_pof_from_the_cli_writes_a_valid_run_and_never_moves_w0(ckpts, tmp_path):
    out = tmp_path / "pof"
    proc = run_cli(
        "post-train",
        ckpts["cnn"],
        "--dataset",
        "digits",
        "--method",
        "pof",
        "--epochs",
        "2",
        "--out",
        out,
        check=0,
    )
    assert "done: test acc" in proc.stdout
    run = Run(out)
    cfg = run.config()
    assert run.status()["state"] == "done" and cfg["method"] == "pof"
    assert (
        abs(cfg["lr"] - 0.05 * 0.2**4) < 1e-12 and "last rate" in cfg["lr_reason"]
    )  # the schedule, continued
    steps = run.metrics("step")
    assert len(steps) == 2 * 11 and all(0 <= s["gamma"] <= 2 for s in steps)
    assert all(0 < s["eta_star"] <= s["eta_max"] and s["delta_norm"] > 0 for s in steps)
    assert all(s["weak_loss_star"] <= s["weak_loss"] for s in steps)
    last = run.epochs()[-1]
    for key in (
        "train_eval_loss",
        "train_eval_acc",
        "test_loss",
        "eta_star_mean",
        "gamma_mean",
        "rejected_count",
    ):
        assert key in last, key
    src, final = _weights(ckpts["cnn"]), _weights(run.checkpoint("final"))
    assert torch.equal(src["classifier.weight"], final["classifier.weight"])
    assert torch.equal(src["classifier.bias"], final["classifier.bias"])
    assert not torch.equal(src["features.0.weight"], final["features.0.weight"])
    _, meta = load_checkpoint(run.checkpoint("final"))
    assert (
        meta["provenance"]["method"] == "pof"
        and meta["provenance"]["pof"]["weak_batch_size"] == 256
    )


@pytest.mark.parametrize("method", METHODS)
def test_every_method_runs(ckpts, tmp_path, method):
    out = tmp_path / method
    run_cli(
        "post-train",
        ckpts["cnn"],
        "--method",
        method,
        "--epochs",
        "1",
        "--lr",
        "0.01",
        "--out",
        out,
        "--quiet",
        check=0,
    )
    run = Run(out)
    assert run.status()["state"] == "done" and run.epochs()[-1]["epoch"] == 1
    src, final = _weights(ckpts["cnn"]), _weights(run.checkpoint("final"))
    head_moved = not torch.equal(src["classifier.weight"], final["classifier.weight"])
    assert head_moved == (method in ("finetune", "sam"))
    perturbed = "delta_norm" in run.metrics("step")[0]
    assert perturbed == (method in ("pof", "random-direction"))


def test_pof_without_perturbation_is_exactly_finetune_frozen(ckpts, tmp_path):
    """Same data order, seeds and learning rate: with gamma = 0 and the weak forward not touching BN
    statistics, PoF must reproduce the frozen-head fine-tune bit for bit."""
    common = ["--epochs", "1", "--lr", "0.01", "--quiet", "--weak-bn-mode", "batch"]
    run_cli(
        "post-train",
        ckpts["cnn"],
        "--method",
        "pof",
        "--gamma-max",
        "0",
        "--out",
        tmp_path / "a",
        *common,
        check=0,
    )
    run_cli(
        "post-train",
        ckpts["cnn"],
        "--method",
        "finetune-frozen",
        "--out",
        tmp_path / "b",
        *common,
        check=0,
    )
    a, b = (
        _weights(tmp_path / "a/checkpoints/final.safetensors"),
        _weights(tmp_path / "b/checkpoints/final.safetensors"),
    )
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


def _torchrun(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = shutil.which("torchrun") or "torchrun"
    return subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "pof",
            "post-train",
            *map(str, args),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize("method", ["finetune-frozen", "finetune"])
def test_torchrun_two_gloo_processes_match_one_process_with_the_same_global_batch(
    ckpts, tmp_path, method
):
    """Tolerance: the runs differ only in float32 summation order (mean of two half-batch
    gradients vs one mean), about 1e-7 relative per step; over 2 epochs (20 steps) at lr 0.05 that
    stays far below 1e-5 absolute, while a real mismatch (other data, other shards) moves weights
    by > 1e-3."""
    args = [
        ckpts["mlp"],
        "--method",
        method,
        "--epochs",
        "2",
        "--lr",
        "0.05",
        "--batch-size",
        "128",
        "--quiet",
    ]
    proc = _torchrun(*args, "--out", tmp_path / "ddp")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_cli("post-train", *args, "--drop-last", "--out", tmp_path / "single", check=0)
    ddp, single = Run(tmp_path / "ddp"), Run(tmp_path / "single")
    assert ddp.config()["world_size"] == 2
    assert [r["epoch"] for r in ddp.epochs()] == [0, 1, 2]
    for ra, rb in zip(ddp.epochs(), single.epochs(), strict=True):
        assert abs(ra["test_loss"] - rb["test_loss"]) < 1e-5 and ra["test_acc"] == rb["test_acc"]
    wa, wb = _weights(ddp.checkpoint("final")), _weights(single.checkpoint("final"))
    src = _weights(ckpts["mlp"])
    for k in wa:
        assert torch.allclose(wa[k], wb[k], atol=1e-5), k
    assert max((wa[k] - src[k]).abs().max() for k in wa) > 1e-3  # training really moved the weights


def test_torchrun_pof_runs_with_a_perturbation_per_rank(ckpts, tmp_path):
    proc = _torchrun(
        ckpts["mlp"],
        "--method",
        "pof",
        "--epochs",
        "1",
        "--lr",
        "0.05",
        "--batch-size",
        "128",
        "--quiet",
        "--out",
        tmp_path / "ddp-pof",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run(tmp_path / "ddp-pof")
    assert run.status()["state"] == "done" and len(run.metrics("step")) == 1347 // 128
    src, final = _weights(ckpts["mlp"]), _weights(run.checkpoint("final"))
    assert torch.equal(src["classifier.weight"], final["classifier.weight"])


def test_post_train_resumes_after_a_kill_exactly(ckpts, tmp_path):
    args = [
        "post-train",
        str(ckpts["cnn"]),
        "--method",
        "pof",
        "--epochs",
        "5",
        "--batch-size",
        "16",
        "--weak-batch-size",
        "64",
        "--lr",
        "0.01",
        "--quiet",
    ]
    run_cli(*args, "--out", tmp_path / "whole", check=0)
    steps_per_epoch = len([r for r in Run(tmp_path / "whole").metrics("step") if r["epoch"] == 0])
    assert steps_per_epoch == 85  # digits' 1347 training images in batches of 16
    # killed in the middle of epoch 3, after epochs 1 and 2 were saved
    proc = killed_before_step(2 * steps_per_epoch + 40, *args, "--out", tmp_path / "broken")
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    broken = Run(tmp_path / "broken")
    assert [r["epoch"] for r in broken.epochs()] == [0, 1, 2]
    assert not broken.checkpoint("final").exists() and broken.status()["state"] == "failed"
    run_cli("post-train", "--out", broken.path, "--resume", "--quiet", check=0)
    a, b = Run(tmp_path / "whole").epochs(), broken.epochs()
    assert [r["epoch"] for r in b] == list(range(6))
    for ra, rb in zip(a, b, strict=True):
        for key in (
            "train_loss",
            "test_loss",
            "test_acc",
            "train_eval_loss",
            "eta_star_mean",
            "gamma_mean",
        ):
            assert ra.get(key) == rb.get(key), (key, ra, rb)
    wa, wb = (
        _weights(tmp_path / "whole/checkpoints/final.safetensors"),
        _weights(broken.checkpoint("final")),
    )
    assert list(wa) == list(wb) and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_checkpoint_for_another_dataset_is_refused(ckpts, tmp_path, pof_main):
    # in this process (conftest.main_in_process): post-train's refusals run for real elsewhere
    proc = pof_main(
        "post-train", ckpts["cnn"], "--dataset", "moons", "--out", tmp_path / "x", "--quiet"
    )
    assert proc.returncode == 2 and "10 output classes but moons has 2" in proc.stderr
    assert not (tmp_path / "x").exists()


def test_default_learning_rate_continues_the_recorded_schedule():
    from pof.config import default_post_lr

    paper = {
        "provenance": {
            "schedule": {"type": "step", "lr": 0.1, "decay": 0.2, "milestones": [60, 120, 160, 200]}
        }
    }
    assert default_post_lr(paper)[0] == pytest.approx(1.6e-4)
    assert default_post_lr({})[0] == pytest.approx(
        1.6e-4
    )  # a foreign checkpoint: the paper's value
    cosine = {
        "provenance": {"schedule": {"type": "cosine", "lr": 0.05, "decay": 0.2, "milestones": []}}
    }
    assert default_post_lr(cosine)[0] == pytest.approx(0.05 * 0.2**4)
    again = {"provenance": {"kind": "post-train", "lr": 3e-4}}
    assert default_post_lr(again)[0] == 3e-4
