"""PyHessian as a user-facing cross-check: its own routines beside this project's estimates, on the
same model, data and seed, through the library and `python -m analysis hessian --cross-check`."""

import json
import re
import time

import pytest
import torch
from test_analysis_cli import run_analysis
from test_browser import _shot
from torch import nn

from analysis.measures.crosscheck import cross_check, pyhessian_estimates
from analysis.reports import hessian_report
from pof.training.pretrain import PretrainConfig, pretrain


def _net_and_batches():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Linear(8, 3))
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    net.train()
    net(x)  # running statistics of its own, so eval mode differs from train mode
    return net, [(x[:32], y[:32]), (x[32:], y[32:])]


@pytest.mark.filterwarnings("ignore:Using backward.. with create_graph")  # the leftover, made here
@pytest.mark.parametrize("one_batch", [True, False])
def test_pyhessian_leaves_the_model_as_it_found_it_and_agrees_despite_stale_gradients(one_batch):
    net, batches = _net_and_batches()
    if one_batch:  # PyHessian's single-batch path (data=) rather than its dataloader path
        batches = [(torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches]))]
    # an earlier second-order call's leftovers: a gradient that still holds its graph, which
    # PyHessian's constructor would add to its own (the Hessian counted twice)
    net.eval()
    x, y = batches[0]
    nn.functional.cross_entropy(net(x), y).backward(create_graph=True)
    net.train()
    state = torch.get_rng_state()
    theirs = pyhessian_estimates(net, batches, top_k=3, probes=30, tol=1e-6, seed=4)
    assert net.training  # PyHessian switched it to eval mode
    assert all(p.grad is None for p in net.parameters())
    assert torch.equal(torch.get_rng_state(), state)
    assert theirs.eigenvalues == sorted(theirs.eigenvalues, reverse=True)
    ours = hessian_report(net, batches, "", top_k=3, probes=30, density=False, seed=4)
    assert net.training
    # the exact Hessian of this 147-parameter net, in eval mode, is the judge of both
    params = dict(net.named_parameters())
    net.eval()

    def loss(flat):
        split, i = {}, 0
        for name, p in params.items():
            split[name] = flat[i : i + p.numel()].view_as(p)
            i += p.numel()
        total = sum(
            nn.functional.cross_entropy(torch.func.functional_call(net, split, (x,)), y) * len(y)
            for x, y in batches
        )
        return total / sum(len(y) for _, y in batches)

    h = torch.func.hessian(loss)(torch.cat([p.detach().reshape(-1) for p in params.values()]))
    exact = torch.linalg.eigvalsh(h).flip(0)[:3].tolist()
    net.train()
    for value, residual, true in zip(theirs.eigenvalues, theirs.residuals, exact, strict=True):
        assert abs(value - true) <= residual + 1e-5
    # on the CPU the same seed gives PyHessian the very probes of this project's trace
    mean = sum(theirs.trace_samples) / len(theirs.trace_samples)
    assert mean == pytest.approx(ours.trace.trace, rel=1e-5)
    check = cross_check(net, batches, ours.top, ours.trace, seed=4, tol=1e-6)
    assert [r.quantity for r in check.rows] == [
        "top eigenvalue 1",
        "top eigenvalue 2",
        "top eigenvalue 3",
        "trace",
    ]
    assert all(r.within for r in check.rows) and net.training


@pytest.fixture(scope="module")
def mlp(tmp_path_factory):
    root = tmp_path_factory.mktemp("cc")
    return pretrain(PretrainConfig(model="mlp", epochs=1), root / "a").checkpoint("final")


def test_the_hessian_command_prints_pyhessian_beside_its_own_numbers(mlp, tmp_path):
    args = ["hessian", mlp, "--cross-check", "--top-k", "2", "--samples", "200"]
    args += ["--probes", "30", "--out", tmp_path, "--quiet"]
    result = json.loads(run_analysis(*args, "--json").stdout)
    rows = {r["quantity"]: r for r in result["cross_check"]["rows"]}
    assert list(rows) == ["top eigenvalue 1", "top eigenvalue 2", "trace"]
    # the report's own numbers are the ones compared
    assert [rows[f"top eigenvalue {i}"]["ours"] for i in (1, 2)] == result["top"]["eigenvalues"]
    assert rows["trace"]["ours"] == result["trace"]["trace"]  # --cross-check implies --trace
    for i in (1, 2):  # a Ritz value lies within its residual of an eigenvalue: both, of the same
        r = rows[f"top eigenvalue {i}"]
        assert abs(r["ours"] - r["pyhessian"]) <= r["ours_error"] + r["pyhessian_error"]
        assert r["within"] and r["relative_difference"] < 0.01
    # the same probe vectors on the CPU: the traces differ by float32 rounding only
    assert rows["trace"]["relative_difference"] < 1e-5 and rows["trace"]["within"]
    printed = run_analysis(*args).stdout  # from the cache, as a table
    assert "cross-check with PyHessian" in printed and "the same vectors as ours" in printed
    line = next(s for s in printed.splitlines() if s.strip().startswith("top eigenvalue 1"))
    r = rows["top eigenvalue 1"]
    assert f"{r['ours']:.6g}" in line and f"{r['pyhessian']:.6g}" in line and "yes" in line


# the fixtures server and page come from conftest
def test_the_inspect_page_cross_checks_with_pyhessian_side_by_side(server, page, tmp_path):
    url, runs = server
    page.goto(url + "/inspect")
    page.get_by_text("Inspect checkpoints").wait_for(timeout=60_000)
    page.wait_for_function(  # the bundled model's card
        "document.querySelectorAll('[data-testid=\"stMetricValue\"]').length >= 1", timeout=60_000
    )
    samples = page.get_by_role("spinbutton", name=re.compile("Training samples"))
    samples.fill("100")
    samples.press("Enter")
    page.get_by_role("button", name="Cross-check with PyHessian").click()
    table = page.locator("[data-testid=stTable] table")
    t0 = time.time()
    while not table.count():
        assert time.time() - t0 < 300, page.content()[:2000]
        assert not page.get_by_text(re.compile(r"cross-check failed")).count(), page.content()
        time.sleep(1)
    header = table.first.locator("thead").inner_text()
    for column in ("This project", "PyHessian", "Relative difference", "Agree"):
        assert column in header, header
    body = table.first.locator("tbody tr")
    rows = [body.nth(i).locator("th, td").all_inner_texts() for i in range(body.count())]
    rows = [[c.strip() for c in r] for r in rows]
    assert [r[0] for r in rows] == [*(f"top eigenvalue {i}" for i in range(1, 6)), "trace"]
    # both columns hold numbers with their uncertainty, read back from the job's saved result
    (saved,) = runs.glob("compare/*/crosscheck/result.json")
    (check,) = json.loads(saved.read_text())["results"].values()
    for shown, row in zip(rows, check["rows"], strict=True):
        assert shown[1] == f"{row['ours']:.6g} ± {row['ours_error']:.2g}"
        assert shown[2] == f"{row['pyhessian']:.6g} ± {row['pyhessian_error']:.2g}"
    assert rows[-1][4] == "yes"  # the traces: the same probes on the CPU
    page.get_by_text("How PyHessian was called").wait_for()
    assert not page.get_by_role("button", name="Cross-check with PyHessian").count()
    _shot(page, tmp_path, "inspect-crosscheck")


def test_a_parameter_the_loss_ignores_does_not_break_pyhessian():
    class Net(nn.Module):  # a head left over from pre-training, unused by forward
        def __init__(self):
            super().__init__()
            self.body, self.old_head = nn.Linear(5, 3), nn.Linear(3, 7)

        def forward(self, x):
            return self.body(x)

    torch.manual_seed(1)
    net = Net()
    batches = [(torch.randn(40, 5), torch.randint(0, 3, (40,)))]
    report = hessian_report(net, batches, "", top_k=2, probes=40, density=False, pyhessian=True)
    rows = report.cross_check.rows
    assert all(r.within for r in rows), rows  # PyHessian alone fails on such a parameter
    assert all(p.requires_grad for p in net.parameters()) and net.training
    assert "other draws than ours" in report.cross_check.how  # its probes span fewer parameters
