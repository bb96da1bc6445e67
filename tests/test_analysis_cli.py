"""`python -m analysis` end to end on real checkpoints, in subprocesses."""

import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT

from analysis import results
from analysis.measures.landscape import Landscape
from pof.training.pretrain import PretrainConfig, pretrain


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
    top = result["top"]
    assert len(top["eigenvalues"]) == 2 and top["eigenvalues"][0] >= top["eigenvalues"][1]
    assert all(r >= 0 for r in top["residuals"]) and top["iterations"] > 0
    assert result["trace"]["stderr"] > 0 and len(result["trace"]["layers"]) == 7
    # every layer's block: a top eigenvalue, and the traces add up to the whole (the same probes)
    layers = result["trace"]["layers"]
    assert all(layer["top_eigenvalue"] is not None for layer in layers)
    assert sum(layer["trace"] for layer in layers) == pytest.approx(result["trace"]["trace"])
    # the largest eigenvalue bounds every block's (a block is a compression of H)
    assert max(layer["top_eigenvalue"] for layer in layers) <= top["eigenvalues"][0] * (1 + 1e-3)
    assert abs(sum(result["density"]["weights"][0]) - 1) < 1e-6
    assert result["last_layer"]["method"] == "dense" and result["last_layer"]["n_samples"] == 1347
    assert "200 of 1347" in result["eval_set"]
    files = list(tmp_path.glob("hessian-*.json"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    second = run_analysis(*args)
    assert "(cached" in second.stderr and files[0].stat().st_mtime_ns == mtime
    assert "top eigenvalues" in second.stdout and "last layer (exact" in second.stdout
    # the printed numbers are the stored ones: eigenvalues in order, the trace with its error
    printed = second.stdout.split("top eigenvalues: ")[1].split("  [")[0].split(", ")
    assert [float(v) for v in printed] == pytest.approx(top["eigenvalues"], rel=1e-5)
    t = result["trace"]
    assert f"trace: {t['trace']:.6g} ± {t['stderr']:.2g} (Hutchinson, 10 probes)" in second.stdout


def test_landscape_before_and_after_along_the_same_saved_directions(ckpts, tmp_path, analysis_main):
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
    saved = [
        results.load(p, "landscape", Landscape)
        for p in sorted((tmp_path / "r").glob("landscape-*.json"))
    ]
    assert len(saved) == 2 and {s.about["checkpoint"] for s in saved} == {str(a), str(b)}
    found = [s.results[s.about["checkpoint"]] for s in saved]
    assert all(len(r.loss) == 5 and len(r.loss[0]) == 5 for r in found)
    assert found[0].directions == found[1].directions
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
    # whole test set: the model's own loss, to the printed digits and within rounding of the stored
    origin = float(one_d.stdout.split("loss at the origin ")[1].split(",")[0])
    assert f"loss at the origin {ev['test']['loss']:.4f}" in one_d.stdout
    assert origin == pytest.approx(ev["test"]["loss"], abs=5e-5)
    (stored,) = [
        s.results[str(a)]
        for p in (tmp_path / "r1").glob("landscape-*.json")
        if (s := results.load(p, "landscape", Landscape))
    ]
    assert stored.origin_loss() == pytest.approx(ev["test"]["loss"], rel=1e-5)
    assert stored.accuracy[1] == pytest.approx(ev["test"]["acc"], abs=1e-9)
    # refused in this process (conftest.main_in_process): the commands above ran for real
    bad = analysis_main("landscape", other, "--directions", dirs, "--out", tmp_path / "r2")
    assert bad.returncode == 2, bad.stderr[-3000:]
    assert "another architecture" in bad.stderr


def test_interpolate_and_sharpness_commands(ckpts, tmp_path):
    a, b, _ = ckpts
    out = run_analysis("interpolate", a, b, "--steps", "5", "--out", tmp_path, "--quiet").stdout
    assert out.count("alpha") == 5 and "alpha +0.000" in out and "alpha +1.000" in out
    lines = {
        float(line.split()[1]): (float(line.split()[3]), float(line.split()[5]))
        for line in out.splitlines()
        if line.startswith("alpha")
    }
    assert list(lines) == [-0.5, 0.0, 0.5, 1.0, 1.5]
    # the line's ends are the two checkpoints themselves (the default range runs past both)
    for alpha, ckpt in ((0.0, a), (1.0, b)):
        ev = json.loads(
            subprocess.run(
                [sys.executable, "-m", "pof", "evaluate", ckpt, "--json"],
                cwd=ROOT,
                capture_output=True,
                text=True,
                env=dict(os.environ),
            ).stdout
        )
        assert lines[alpha][0] == pytest.approx(ev["test"]["loss"], abs=5e-5)
        assert lines[alpha][1] == pytest.approx(ev["test"]["acc"], abs=5e-5)
    sharp = run_analysis("sharpness", a, "--samples", "200", "--out", tmp_path).stdout
    assert "worst-case" in sharp and "adaptive worst-case" in sharp and "average-case" in sharp
    measures = [line for line in sharp.splitlines() if " radius " in line]
    assert len(measures) == 3
    for line in measures:
        base = float(line.split("loss ")[1].split(" ->")[0])
        increase = float(line.split("-> +")[1].split()[0].rstrip(","))
        assert base > 0
        if line.startswith("average-case"):  # a mean over noise draws, with their largest
            assert float(line.split("max ")[1]) >= increase
        else:  # the worst case in the ball includes its centre: never below the base loss
            assert increase >= 0
    # the same base loss for all three: the same model on the same 200 images
    assert len({line.split("loss ")[1].split(" ->")[0] for line in measures}) == 1


def test_a_result_of_another_schema_or_unreadable_is_computed_again(ckpts, tmp_path):
    a, _, _ = ckpts
    args = ["sharpness", a, "--samples", "100", "--steps", "1", "--noise-samples", "2"]
    args += ["--out", tmp_path, "--quiet"]
    first = run_analysis(*args).stdout
    (path,) = tmp_path.glob("sharpness-*.json")
    saved = json.loads(path.read_text())
    assert saved["schema"] == results.SCHEMA and saved["kind"] == "sharpness"
    assert "(cached" in run_analysis(*args).stderr
    # an older format: said so in one line, computed again to the same numbers, stored anew
    path.write_text(json.dumps({**saved, "schema": results.SCHEMA - 1}))
    again = run_analysis(*args)
    assert f"schema {results.SCHEMA - 1}, this version reads {results.SCHEMA}" in again.stderr
    assert "computing it again" in again.stderr and "Traceback" not in again.stderr
    assert again.stdout.splitlines()[:3] == first.splitlines()[:3]
    assert json.loads(path.read_text())["schema"] == results.SCHEMA
    # a torn file: the same
    path.write_text(path.read_text()[:40])
    torn = run_analysis(*args)
    assert "computing it again" in torn.stderr and "Traceback" not in torn.stderr
    assert torn.stdout.splitlines()[:3] == first.splitlines()[:3]
