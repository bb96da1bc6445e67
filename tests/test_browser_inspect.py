"""Inspect in a real browser: upload a checkpoint of the user's own architecture, see its card,
compute its per-layer view next to a second checkpoint; a pickle payload uploaded is refused and
never runs."""

import os
import re
import textwrap
import time

import torch
from test_browser import _plot_traces, _shot
from torch import nn

OWN_NET = textwrap.dedent('''
    import torch.nn as nn

    def build(num_classes=10):
        """Not a registry model: the user's own layout, its last layer named `head`."""
        net = nn.Sequential()
        net.add_module("stem", nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6),
                                             nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()))
        net.add_module("head", nn.Linear(24, num_classes))
        return net
''')


def _build(folder):
    import importlib.util

    spec = importlib.util.spec_from_file_location("own_browser_net", folder / "ownnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build()


def _fine_tuned(model: nn.Module) -> nn.Module:
    """A few SGD steps on digits: the user's "after" checkpoint."""
    from pof.data.batches import Batches
    from pof.data.load import load_dataset

    data = load_dataset("digits")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for xb, yb in Batches(data.x_train, data.y_train, data.mean, data.std, 64):
        opt.zero_grad()
        nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()
    return model.eval()


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['POF_TEST_MARKER']}",))


# the fixtures server and page come from conftest
def test_upload_own_model_and_compare_per_layer(server, page, tmp_path, monkeypatch):
    url, runs = server
    (tmp_path / "ownnet.py").write_text(OWN_NET)
    before = _build(tmp_path)
    torch.save({"model": before.state_dict(), "epoch": 0}, tmp_path / "before.pt")
    torch.save({"model": _fine_tuned(before).state_dict(), "epoch": 1}, tmp_path / "after.pt")

    page.goto(url + "/inspect")
    page.get_by_text("Inspect checkpoints").wait_for(timeout=60_000)
    page.get_by_text("an upload").first.click()
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "before.pt"))
    page.get_by_text("carries no metadata of this project").wait_for(timeout=30_000)
    page.get_by_text("holds weights only: give its architecture").wait_for(
        timeout=30_000
    )  # says what to do
    page.get_by_role("textbox", name="Architecture").fill(f"{tmp_path / 'ownnet.py'}:build")
    page.get_by_role("textbox", name="Architecture").press("Enter")
    page.get_by_text("runs your own code").wait_for(timeout=30_000)
    page.get_by_text("chosen by last nn.Linear").wait_for(
        timeout=30_000
    )  # the card: its classifier, found
    page.get_by_text("a torch file of another origin").wait_for()
    _shot(page, tmp_path, "inspect-1-card")

    radios = page.get_by_text("an upload")
    radios.nth(1).click()  # checkpoint B: a second upload
    page.locator("input[type=file]").nth(1).set_input_files(str(tmp_path / "after.pt"))
    page.wait_for_function(
        "document.querySelectorAll('[data-testid=\"stMetricValue\"]').length >= 6", timeout=30_000
    )  # two cards of three numbers
    samples = page.get_by_role("spinbutton", name=re.compile("Training samples"))
    samples.fill("200")
    samples.press("Enter")
    page.get_by_role("button", name="Compute 1 analysis").click()  # while the page reruns, maybe
    t0 = time.time()
    while not list(runs.glob("compare/*/layers/status.json")):  # the click started the job
        assert time.time() - t0 < 60, f"no job started: {page.inner_text('body')[:2000]}"
        time.sleep(0.5)
    while len(_plot_traces(page)) < 1:
        assert time.time() - t0 < 300, page.content()[:2000]
        assert not page.get_by_text(re.compile(r"failed:")).count(), page.content()[:3000]
        time.sleep(1)
    # the chart is drawn in steps: wait until it holds both checkpoints' lines and their ratio
    page.wait_for_function(
        """() => {
            const plot = document.querySelector('.js-plotly-plot');
            const names = new Set(((plot && plot.data) || []).map(t => t.name));
            return ['before', 'after', 'after / before'].every(n => names.has(n));
        }""",
        timeout=30_000,
    )
    names = page.evaluate("document.querySelector('.js-plotly-plot').data.map(t => t.name)")
    # two checkpoints along the depth, called by the names they were uploaded with, and their ratio
    assert {"before", "after", "after / before"} <= set(names), names
    page.get_by_text("Per layer: which layers are sharp").wait_for()
    _shot(page, tmp_path, "inspect-2-layers")

    marker = tmp_path / "pwned"
    monkeypatch.setenv("POF_TEST_MARKER", str(marker))
    torch.save({"state_dict": _Payload()}, tmp_path / "evil.pt")
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "evil.pt"))
    page.get_by_text(re.compile(r"pickled Python object \(posix.system\)")).wait_for(timeout=30_000)
    _shot(page, tmp_path, "inspect-3-pickle-refused")
    assert not marker.exists()
    assert len(list((runs / ".uploads").glob("*.pt"))) == 3  # stored under generated names
