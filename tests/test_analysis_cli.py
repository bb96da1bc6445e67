"""`python -m analysis` end to end on real checkpoints, in subprocesses."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from pof.train import PretrainConfig, pretrain


def run_analysis(*args, check=0):
    env = dict(os.environ)
    proc = subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if check is not None:
        assert proc.returncode == check, proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("ck")
    a = pretrain(
        PretrainConfig(model="cnn-small", arch_args={"width": 8}, epochs=2), root / "a"
    ).checkpoint("final")
    b = pretrain(
        PretrainConfig(model="cnn-small", arch_args={"width": 8}, epochs=3), root / "b"
    ).checkpoint("final")
    other = pretrain(PretrainConfig(model="mlp", epochs=1), root / "c").checkpoint("final")
    return a, b, other


def test_hessian_command_writes_json_and_answers_twice_from_the_cache(ckpts, tmp_path):
    a, _, _ = ckpts
    args = [
        "hessian",
        a,
        "--top-k",
        "2",
        "--trace",
        "--per-layer",
        "--density",
        "--samples",
        "200",
        "--probes",
        "10",
        "--density-steps",
        "20",
        "--out",
        tmp_path,
        "--quiet",
    ]
    first = run_analysis(*args, "--json")
    result = json.loads(first.stdout)
    assert (
        len(result["top"]["eigenvalues"]) == 2
        and result["top"]["eigenvalues"][0] >= result["top"]["eigenvalues"][1]
    )
    assert result["trace"]["stderr"] > 0 and len(result["trace"]["layers"]) == 7
    assert abs(sum(result["density"]["weights"][0]) - 1) < 1e-6
    assert result["last_layer"]["method"] == "dense" and result["last_layer"]["n_samples"] == 1347
    assert "200 of 1347" in result["eval_set"]
    files = list(tmp_path.glob("hessian-*.json"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = run_analysis(*args)
    assert "(cached" in second.stderr and files[0].stat().st_mtime_ns == mtime
    assert "top eigenvalues" in second.stdout and "last layer (exact" in second.stdout


def test_landscape_before_and_after_along_the_same_saved_directions(ckpts, tmp_path):
    a, b, other = ckpts
    dirs = tmp_path / "dirs.safetensors"
    args = [
        "landscape",
        a,
        "--compare",
        b,
        "--dims",
        "2",
        "--steps",
        "5",
        "--directions",
        dirs,
        "--samples",
        "100",
        "--out",
        tmp_path / "r",
        "--quiet",
    ]
    run_analysis(*args)
    assert dirs.exists()
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "r").glob("landscape-*.json"))]
    assert len(results) == 2 and {r["checkpoint"] for r in results} == {str(a), str(b)}
    assert all(len(r["loss"]) == 5 and len(r["loss"][0]) == 5 for r in results)
    assert results[0]["directions"] == results[1]["directions"]
    ev = json.loads(
        subprocess.run(
            [sys.executable, "-m", "pof", "evaluate", a, "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=dict(os.environ),
        ).stdout
    )
    one_d = run_analysis(
        "landscape", a, "--steps", "3", "--directions", dirs, "--out", tmp_path / "r1", "--quiet"
    )
    assert (
        f"loss at the origin {ev['test']['loss']:.4f}" in one_d.stdout
    )  # whole test set: the model's own loss
    bad = run_analysis("landscape", other, "--directions", dirs, "--out", tmp_path / "r2", check=2)
    assert "another architecture" in bad.stderr


def test_interpolate_and_sharpness_commands(ckpts, tmp_path):
    a, b, _ = ckpts
    out = run_analysis("interpolate", a, b, "--steps", "5", "--out", tmp_path, "--quiet").stdout
    assert out.count("alpha") == 5 and "alpha +0.000" in out and "alpha +1.000" in out
    sharp = run_analysis("sharpness", a, "--samples", "200", "--out", tmp_path).stdout
    assert "worst-case" in sharp and "adaptive worst-case" in sharp and "average-case" in sharp
