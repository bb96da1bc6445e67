"""Curvature over time after the fact: `python -m analysis track RUN` on real short runs, against
the series a tracked run recorded live, its refusals, and the Compare page drawing both kinds of
series (AppTest) and starting the job for a run that has neither."""

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, run_cli, wait_for_state
from streamlit.testing.v1 import AppTest

from analysis.cli import main as cli_main
from analysis.tracking import job_dir, series
from pof.curvature.tracker import stability_threshold
from pof.runs.run import Run

TRACK = ("--track", "--track-samples", "64", "--track-probes", "4")


def run_analysis(*args):
    return subprocess.run(
        [sys.executable, "-m", "analysis", *map(str, args)],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A one-epoch digits model (--save-every 1), and three post-trainings of it with checkpoints
    at every epoch: PoF and finetune-frozen tracked live, finetune not tracked."""
    root = tmp_path_factory.mktemp("runs")
    run_cli(
        "pretrain", "--model", "mlp", "--dataset", "digits", "--epochs", "1", "--save-every", "1",
        "--out", root / "base", "--quiet", check=0,
    )  # fmt: skip
    ckpt = root / "base/checkpoints/final.safetensors"
    for method, extra in (("pof", TRACK), ("finetune-frozen", TRACK), ("finetune", ())):
        run_cli(
            "post-train", ckpt, "--epochs", "2", "--lr", "0.01", "--method", method,
            "--save-every", "1", *extra, "--out", root / method, "--quiet", check=0,
        )  # fmt: skip
    return root


def test_the_checkpoint_series_of_a_tracked_run_is_its_live_series(runs, tmp_path):
    run = tmp_path / "pof"
    shutil.copytree(runs / "pof", run)
    live_bytes = (run / "curvature.jsonl").read_bytes()
    proc = run_analysis("track", run, "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    live, live_setup = Run(run).curvature(), Run(run).curvature_setup()
    points, setup = out["points"], out["setup"]
    # the same probe subset, the same steps, the same weights: the same numbers
    assert (
        setup["source"] == "checkpoints" and setup["probe_indices"] == live_setup["probe_indices"]
    )
    assert (setup["samples"], setup["probes"]) == (64, 4)
    assert [p["checkpoint"] for p in points] == ["initial", "epoch-0001", "epoch-0002"]
    assert [p["step"] for p in points] == [p["step"] for p in live]
    first, first_live = points[0], live[0]
    assert first["step"] == 0 and first["warm"] is False
    assert first["top_eigenvalue"] == pytest.approx(first_live["top_eigenvalue"], rel=1e-6)
    assert first["last_layer_top"] == pytest.approx(first_live["last_layer_top"], rel=1e-6)
    assert first["trace"] == pytest.approx(first_live["trace"], rel=1e-6, abs=1e-9)
    # warm-started from checkpoint to checkpoint as the live tracker was from point to point
    assert all(p["warm"] for p in points[1:])
    for p, q in zip(points, live, strict=True):
        assert p["top_eigenvalue"] == pytest.approx(q["top_eigenvalue"], rel=1e-5)
        assert p["lr"] == q["lr"] and p["threshold"] == pytest.approx(q["threshold"])
    # the classifier was frozen: measured all the same, like the live series
    assert setup["parameters"].startswith("all")
    assert [x["name"] for x in points[0]["layers"]] == [x["name"] for x in live[0]["layers"]]
    assert points[0]["layers"][-1]["name"] == "classifier"
    # the live series is never touched, and stays the one a reader gets
    assert (run / "curvature.jsonl").read_bytes() == live_bytes
    assert (job_dir(run) / "curvature.jsonl").exists()
    assert series(run).source == "live"


def test_an_untracked_run_gets_its_series_from_its_checkpoints(runs, tmp_path):
    run = tmp_path / "finetune"
    shutil.copytree(runs / "finetune", run)
    assert series(run) is None
    proc = run_analysis("track", run, "--samples", "32", "--probes", "3", "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "initial" in proc.stdout and "epoch-0002" in proc.stdout and "± se" in proc.stdout
    s = series(run)
    assert s.source == "checkpoints" and len(s.setup["probe_indices"]) == 32
    assert [p["epoch"] for p in s.points] == [0.0, 1.0, 2.0]
    # the rate in force and the run's Nesterov SGD set the threshold
    assert {p["lr"] for p in s.points} == {0.01}
    assert s.points[0]["threshold"] == pytest.approx(stability_threshold(0.01, 0.9, True, 5e-4))
    assert "classifier" in [x["name"] for x in s.points[0]["layers"]]  # all layers trained
    assert all(len(p["layers"]) == 3 and p["trace_stderr"] > 0 for p in s.points)
    # a checkpoint rewritten since: the series is no longer the run's
    shutil.copy(
        runs / "pof/checkpoints/final.safetensors", run / "checkpoints/epoch-0002.safetensors"
    )
    assert series(run) is None
    # a pre-training run too: initial and epoch-0001 (final holds the same weights)
    base = tmp_path / "base"
    shutil.copytree(runs / "base", base)
    proc = run_analysis("track", base, "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [p["checkpoint"] for p in json.loads(proc.stdout)["points"]] == ["initial", "epoch-0001"]


def test_bad_input_is_refused_in_one_line_and_nothing_is_written(runs, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    nock = tmp_path / "nock"
    nock.mkdir()
    (nock / "config.json").write_text('{"command": "post-train", "config": {}, "epochs": 2}')
    corrupt = tmp_path / "corrupt"
    shutil.copytree(runs / "finetune", corrupt)
    epoch1 = corrupt / "checkpoints/epoch-0001.safetensors"
    epoch1.write_bytes(epoch1.read_bytes()[:3000])
    part = tmp_path / "part"
    part.mkdir()
    (part / "config.json").write_text('{"command": "analysis", "part": "layers", "config": {}}')
    cases = {
        tmp_path / "missing": "is not a folder",
        tmp_path / "empty": "is not a run folder",
        nock: "has no checkpoints",
        corrupt: "epoch-0001.safetensors is not a readable safetensors file",
        part: "not a pretrain or post-train run",
    }
    # the command's own path in this process (each refusal is made before torch does any work) ...
    for folder, message in cases.items():
        assert cli_main(["track", str(folder), "--quiet"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], lines
        assert not job_dir(folder).exists()
    for flags, message in (
        (("--samples", "0"), "--samples must be an integer >= 1"),
        (("--samples", "5000"), "more than the 1347 training examples"),
        (("--probes", "1"), "--probes must be an integer >= 2"),
    ):
        assert cli_main(["track", str(runs / "finetune"), *flags, "--quiet"]) == 2
        assert message in capsys.readouterr().err
    assert not job_dir(runs / "finetune").exists()
    # ... and as a process: its exit code and one line, no traceback
    proc = run_analysis("track", corrupt, "--quiet")
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and not job_dir(corrupt).exists()


def test_a_running_job_is_measured_on_the_checkpoints_saved_so_far(runs, tmp_path):
    run = Run(tmp_path / "running")
    shutil.copytree(runs / "finetune", run.path)
    run.checkpoint("final").unlink()
    run.checkpoint("epoch-0002").unlink()
    run.set_status("running", pid=os.getpid())  # a live process: the job reads as running
    proc = run_analysis("track", run.path, "--quiet", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "still running" in proc.stderr and "2 checkpoints saved so far" in proc.stderr
    points = json.loads(proc.stdout)["points"]
    assert [p["checkpoint"] for p in points] == ["initial", "epoch-0001"]
    assert run.status()["state"] == "running"  # the run's own status is left alone


# --- the Compare page -------------------------------------------------------------------------


def _compare_page():
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60).run()
    return at.switch_page("views/compare.py").run()


def _names(chart) -> set:
    return {t.get("name") for t in json.loads(chart.proto.spec)["data"]}


def test_compare_page_draws_curvature_over_time_and_computes_a_missing_series(
    runs, tmp_path, monkeypatch
):
    root = tmp_path / "runs"
    for name in ("pof", "finetune-frozen", "finetune"):
        shutil.copytree(runs / name, root / name)
    monkeypatch.setenv("POF_RUNS", str(root))
    at = _compare_page()
    assert not at.exception
    at.selectbox[0].set_value(str(root / "pof")).run()
    charts = at.get("plotly_chart")
    # the curves, then λ_max, the per-layer ratios, their heatmaps and the traces over time
    assert len(charts) == 5, [c.proto.spec[:80] for c in charts]
    top = _names(charts[1])
    assert {"pof (pof): λ_max", "pof (pof): threshold", "pof (pof): last layer (exact)"} <= top
    assert "finetune-frozen (finetune-frozen): λ_max" in top
    assert not any(n.startswith("finetune (finetune)") for n in top)
    ratios = json.loads(charts[2].proto.spec)
    titles = [a["text"] for a in ratios["layout"]["annotations"]]
    assert [t.removesuffix(" (no value)") for t in titles[:2]] == ["features.1", "features.3"]
    heat = json.loads(charts[3].proto.spec)
    assert [t["type"] for t in heat["data"]] == ["heatmap", "heatmap"]
    captions = " ".join(c.value for c in at.caption)
    assert "recorded live" in captions and "No curvature series yet for finetune" in captions
    button = next(b for b in at.button if b.label.startswith("Compute curvature over time"))
    assert button.label == "Compute curvature over time (1 run)"
    button.click().run()
    assert not at.exception
    job = Run(job_dir(root / "finetune"))
    wait_for_state(job, ("done",), timeout=180)
    at = _compare_page()
    at.selectbox[0].set_value(str(root / "pof")).run()
    charts = at.get("plotly_chart")
    assert "finetune (finetune): λ_max" in _names(charts[1])
    assert not any(b.label.startswith("Compute curvature") for b in at.button)
    # like for like: the probe subset's size and probe count of the live series beside it
    assert "from its 3 checkpoints, 64 probe examples, 4 probes" in " ".join(
        c.value for c in at.caption
    )
    # the series is in the run's analysis folder; its live files were never created
    assert not (root / "finetune" / "curvature.jsonl").exists()
