"""The Inspect page (AppTest, real files, real background jobs): any one or two checkpoints, the
user's own architectures included, their cards, and the per-layer view computed as a job."""

import json
import math
import os
import re
import textwrap

import numpy as np
import pytest
import torch
from conftest import ROOT, wait_for_state
from streamlit.testing.v1 import AppTest

from analysis.compare import load_results
from analysis.results import SCHEMA
from pof.runs.run import Run

OWN_NET = textwrap.dedent('''
    import torch.nn as nn

    def build(num_classes=3):
        """A user's own net whose last layer is called `head`."""
        net = nn.Sequential()
        net.add_module("body", nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 12), nn.ReLU()))
        net.add_module("head", nn.Linear(12, num_classes))
        return net
''')


def _inspect():
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60).run()
    return at.switch_page("views/inspect.py").run()


def _radio(at, label):
    return next(r for r in at.radio if r.label == label)


def _text(at, label):
    return next(t for t in at.text_input if t.label == label)


def _card_lines(at, field: str) -> list[str]:
    """The value of a card's line (**Field:** value) on each card, in order."""
    return [
        line.split(f"**{field}:** ", 1)[1]
        for m in at.markdown
        for line in m.value.splitlines()
        if f"**{field}:** " in line
    ]


def test_two_bundled_checkpoints_side_by_side_per_layer(runs_root):
    at = _inspect()
    assert not at.exception and at.title[0].value == "Inspect checkpoints"
    _radio(at, "Checkpoint B from").set_value("bundled models").run()
    assert _card_lines(at, "Architecture") == ["`cnn-small` (width=32)"] * 2
    accs = [m.value for m in at.metric if m.label == "test accuracy (measured)"]
    assert accs == ["99.1%", "99.6%"]  # SGD and SAM, measured: what the manifest records
    assert (
        _card_lines(at, "Normalization")
        == ["mean 0.3053; std 0.3758, recorded in the checkpoint"] * 2
    )
    next(n for n in at.number_input if n.label.startswith("Training samples")).set_value(100).run()
    next(b for b in at.button if b.label == "Compute 1 analysis").click().run()
    assert not at.exception
    job = Run(next((runs_root / "compare").iterdir()) / "layers")
    assert wait_for_state(job, ("done", "failed"), timeout=300)["state"] == "done", (
        job.path / "log.txt"
    ).read_text()
    at.run()
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 1
    lines = {t["name"] for t in charts[0]["data"] if t["type"] == "scatter"}
    assert lines == {
        "digits-cnn-small-sgd",
        "digits-cnn-small-sam",
        "digits-cnn-small-sgd: whole network",
        "digits-cnn-small-sam: whole network",
        "indistinguishable from 1 (± 2 se)",  # the band around the ratio panel's 1
    }
    ratio = next(t for t in charts[0]["data"] if t["type"] == "bar")  # the per-layer ratio panel
    table = at.dataframe[0].value
    # conv, BN, (ReLU), conv, BN, (ReLU, pool), conv, BN, classifier: every parameterized layer, in
    # order
    assert list(table["layer"]) == [
        "features.0",
        "features.1",
        "features.3",
        "features.4",
        "features.7",
        "features.8",
        "classifier ★",
    ]
    result = load_results(
        job.path.parent,
        [
            p
            for p in json.loads((job.path / "config.json").read_text())["subject"][
                "checkpoints"
            ].values()
        ],
    )["layers"]
    sgd, sam = (result[k].rows for k in ("digits-cnn-small-sgd", "digits-cnn-small-sam"))
    assert len(sgd) == len(sam) == 7
    assert ratio["y"] == pytest.approx(
        [b.top_eigenvalue / a.top_eigenvalue for a, b in zip(sgd, sam, strict=True)]
    )
    # each ± its error from both eigenvalues' residuals: r sqrt((ra/a)^2 + (rb/b)^2)
    assert ratio["error_y"]["array"] == pytest.approx(
        [
            b.top_eigenvalue
            / a.top_eigenvalue
            * math.hypot(a.top_residual / a.top_eigenvalue, b.top_residual / b.top_eigenvalue)
            for a, b in zip(sgd, sam, strict=True)
        ]
    )
    assert [d.label for d in at.get("download_button")] == [
        "figure (HTML)",
        "numbers (JSON)",
        "table (CSV)",
    ]
    # the same question again: shown at once, nothing to compute
    again = _inspect()
    _radio(again, "Checkpoint B from").set_value("bundled models").run()
    next(n for n in again.number_input if n.label.startswith("Training samples")).set_value(
        100
    ).run()
    assert len(again.get("plotly_chart")) == 1 and not any(
        b.label.startswith("Compute") for b in again.button
    )


def test_a_foreign_model_on_the_users_own_data_gets_its_card(runs_root, tmp_path):
    (tmp_path / "ownnet.py").write_text(OWN_NET)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 2, 4, 4)).astype(np.float32)
    y = np.arange(30) % 3
    np.savez(tmp_path / "mine.npz", x_train=x[:20], y_train=y[:20], x_test=x[20:], y_test=y[20:])
    import importlib.util

    spec = importlib.util.spec_from_file_location("ownnet", tmp_path / "ownnet.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.save(
        {"state_dict": {f"net.{k}": v for k, v in mod.build().state_dict().items()}},
        tmp_path / "own.ckpt",
    )
    at = _inspect()
    _radio(at, "Checkpoint A from").set_value("a path on this server").run()
    _text(at, "Path of the model file").set_value(str(tmp_path / "own.ckpt")).run()
    assert any("carries no metadata of this project" in c.value for c in at.caption)
    next(s for s in at.selectbox if s.label == "Data").set_value(
        "a file or folder of my own ..."
    ).run()
    _text(at, "npz:PATH, csv:PATH or imagefolder:PATH").set_value(
        f"npz:{tmp_path / 'mine.npz'}"
    ).run()
    assert (
        "holds weights only: give its architecture" in at.error[0].value
    )  # refused, with what to do
    _text(at, "Architecture").set_value(f"{tmp_path / 'ownnet.py'}:build").run()
    assert not at.exception and not at.error
    assert any("runs your own code" in w.value for w in at.warning)  # said plainly
    metrics = {m.label: m.value for m in at.metric}
    assert _card_lines(at, "Classifier") == ["`head`"]
    assert metrics["parameters"] == f"{2 * 16 * 12 + 12 + 12 * 3 + 3:,}"
    assert re.fullmatch(r"\d+\.\d%", metrics["test accuracy (measured)"])
    assert any(
        "stripped" not in c.value and "a torch file of another origin" in c.value
        for c in at.caption
    )
    # saved once as a project checkpoint: next time, one click and no fields
    next(b for b in at.button if b.label == "Save as a project checkpoint").click().run()
    saved = runs_root / "imported" / "own.safetensors"
    assert saved.exists() and any(str(saved) in s.value for s in at.success)
    again = _inspect()
    _radio(again, "Checkpoint A from").set_value("my runs").run()
    assert next(
        s for s in again.selectbox if s.label == "Run checkpoint or imported model"
    ).value == str(saved)
    assert not again.error, again.error[0].value
    assert (
        next(s for s in again.selectbox if s.label == "Data").value
        == f"npz:{tmp_path / 'mine.npz'}"
    )
    assert _card_lines(again, "Classifier") == ["`head`"]
    assert _card_lines(again, "Architecture") == [f"`{tmp_path / 'ownnet.py'}:build`"]
    assert any("imported with `pof import`" in c.value for c in again.caption)


def test_a_pickle_given_to_the_page_is_refused_and_never_run(runs_root, tmp_path, monkeypatch):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"state_dict": Payload()}, tmp_path / "evil.pt")
    at = _inspect()
    _radio(at, "Checkpoint A from").set_value("a path on this server").run()
    _text(at, "Path of the model file").set_value(str(tmp_path / "evil.pt")).run()
    _text(at, "Architecture").set_value("cnn-small").run()
    assert "pickled Python object (posix.system)" in at.error[0].value
    assert not marker.exists()


def test_traces_only_for_a_large_model(runs_root):
    at = _inspect()
    # the settings changed and Compute clicked before the page has rerun with them (a quick user,
    # a busy server): the click still counts, and the job computes with the new settings
    next(n for n in at.number_input if n.label.startswith("Training samples")).set_value(100)
    next(c for c in at.checkbox if c.label == "Per layer: traces only").check()
    next(b for b in at.button if b.label == "Compute 1 analysis").click().run()
    job = Run(next((runs_root / "compare").iterdir()) / "layers")
    assert wait_for_state(job, ("done", "failed"), timeout=300)["state"] == "done", (
        job.path / "log.txt"
    ).read_text()
    config = json.loads((job.path / "config.json").read_text())["config"]
    assert (config["samples"], config["layer_traces_only"]) == (100, True), config
    at.run()
    assert not at.exception
    assert _radio(at, "Along the depth").options == ["trace", "trace per param", "share of trace"]
    saved = json.loads((job.path / "result.json").read_text())
    assert saved["schema"] == SCHEMA and saved["kind"] == "layers"
    rows = saved["results"]["digits-cnn-small-sgd"]["rows"]
    assert all(r["top_eigenvalue"] is None and r["trace"] is not None for r in rows)
