"""The Learn chapters through AppTest, section by section, opened through the app's navigation
(app/main.py): every number shown is the engine's (analysis.learn) for the settings on the page,
and moving a control changes what it should."""

import json
import re

import pytest
from conftest import ROOT, wait_for_state
from streamlit.testing.v1 import AppTest

from analysis import learn
from app.learn.chapters import CHAPTERS
from pof.runs.run import Run

SHARP = learn.Recipe(batch_size=100, dataset="moons", points=200, noise=0.25, target_loss=0.15)
FLAT = learn.Recipe(
    batch_size=16,
    optimizer="sam",
    rho=0.2,
    dataset="moons",
    points=200,
    noise=0.25,
    target_loss=0.15,
)


@pytest.fixture(scope="module")
def fresh():
    """The engine's own numbers for the page's pair, computed here without any disk store: what
    the page (which reads shipped or cached results) must agree with."""
    learn.use_store(None)
    out = {}
    for r in (SHARP, FLAT):
        out[r] = (learn.train.__wrapped__(r), learn.recipe_curvature.__wrapped__(r))
    return out


def _open(number: int) -> AppTest:
    """Chapter `number` of the Learn page, through the app's navigation."""
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    at.switch_page(CHAPTERS[number - 1].page).run()
    assert not at.exception, at.exception
    return at


@pytest.fixture
def chapter(runs_root):
    return _open


def _chart(at, key: str) -> dict:
    return next(
        json.loads(c.proto.spec)
        for c in at.get("plotly_chart")
        if c.proto.id.endswith(key) or key in c.proto.id
    )


def _metrics(at) -> list[tuple[str, str]]:
    return [(m.label, m.value) for m in at.metric]


def _fmt(x):
    return f"{x:.3g}"


def test_six_chapters_each_a_section_with_references_figures_and_the_way_on(chapter):
    pages = [chapter(n) for n in range(1, 7)]
    assert [[h.value for h in at.header] for at in pages] == [
        ["1. What flatness is"],
        ["2. Why it might matter"],
        ["3. What makes minima flat or sharp"],
        ["4. What PoF does, step by step"],
        ["5. The caveats"],
        ["6. The edge of stability"],
    ]
    assert [len(at.get("plotly_chart")) for at in pages] == [1, 1, 3, 2, 2, 1]
    for at in pages:
        assert sum(c.value.startswith("References:") for c in at.caption) == 1
        # one under each figure
        captions = sum(c.value.startswith("What to look at") for c in at.caption)
        assert captions == len(at.get("plotly_chart"))
    assert pages[0].title[0].value == "Learn: what a flat minimum is"  # and the introduction
    links = [[link.proto.label for link in at.get("page_link")] for at in pages]
    assert links[0] == ["Next: 2. Why it might matter"]
    assert links[2] == ["Back: 2. Why it might matter", "Next: 4. What PoF does, step by step"]
    assert links[5] == ["Back: 5. The caveats"]


def test_section_1_shows_each_networks_measured_curvature_and_the_slice_follows_the_width(chapter):
    page = chapter(1)
    table = page.table[0].value  # rows: the measures; columns: the two networks
    values = list(table.loc["λ_max (Lanczos, ± residual)"])
    tops = [learn.recipe_curvature(r).top for r in (SHARP, FLAT)]  # each with its uncertainty
    assert values == [f"{_fmt(t.eigenvalues[0])} ± {t.residuals[0]:.1g}" for t in tops]
    traces = [learn.recipe_curvature(r).trace for r in (SHARP, FLAT)]
    assert list(table.loc["trace (Hutchinson, ± one s.e.)"]) == [
        f"{_fmt(t.trace)} ± {t.stderr:.2g}" for t in traces
    ]
    assert list(table.loc["adaptive sharpness (ρ = 0.05)"]) == [
        _fmt(learn.recipe_curvature(r).adaptive.increase) for r in (SHARP, FLAT)
    ]
    assert tops[0].eigenvalues[0] > 3 * tops[1].eigenvalues[0]  # the sharp one is sharper
    before = _chart(page, "s1-fig")
    page.slider(key="s1-width").set_value(3.0).run()
    after = _chart(page, "s1-fig")
    assert max(after["data"][0]["x"]) == 3.0 and max(before["data"][0]["x"]) == 1.5
    assert after["data"][0]["y"] == learn.eigen_slice(SHARP, 3.0).loss


def test_section_2_the_rise_from_a_shift_grows_with_the_shift_and_is_the_engines(chapter):
    page = chapter(2)
    rises = lambda at: [float(v) for label, v in _metrics(at) if label == "rise from the shift"]
    small = rises(page)
    page.slider(key="s2-shift").set_value(0.6).run()
    large = rises(page)
    assert all(b > a for a, b in zip(small, large, strict=True))
    assert large[0] == float(_fmt(learn.train_test_slice(SHARP, 1.0, 0, shift=0.6).shift_rise))
    assert large[0] > large[1]  # the same shift costs the sharp network more


def test_section_3_recipes_retrain_and_a_recipe_that_misses_the_target_says_so(chapter):
    page = chapter(3)
    page.select_slider(key="s3-a-batch").set_value(8).run()
    titles = [a["text"] for a in _chart(page, "s3-boundary")["layout"]["annotations"]]
    assert "A: SGD, batch 8, lr 0.1" in titles and "B: SAM (rho 0.2), batch 16, lr 0.1" in titles
    assert not page.warning
    page.selectbox(key="s3-data").set_value("spirals").run()
    page.select_slider(key="s3-target").set_value(0.1).run()
    page.select_slider(key="s3-a-lr").set_value(0.01).run()
    missed = [w.value for w in page.warning]
    assert any("did not reach the target loss in 2000 steps" in w for w in missed), missed


def test_section_3_digits_table_is_the_exact_last_layer_and_the_whole_network_is_a_background_job(
    chapter, runs_root
):
    page = chapter(3)
    table = page.table[0]  # the digits pair (chapter 3 has no other table)
    exact = learn.bundled_last_layer(
        {"SGD": str(ROOT / "assets/digits-cnn-small-sgd.safetensors")}
    )["SGD"]
    assert _fmt(exact.top) in table.value.to_string()
    page.button(key="s3-digits-job").click().run()
    jobs = [p.parent for p in runs_root.glob("compare/*/hessian/status.json")]
    assert len(jobs) == 1  # RUNS/compare/KEY/hessian, keyed like the Inspect page's comparisons
    job = Run(jobs[0])
    assert job.status()["state"] in ("queued", "running")
    assert not page.get("button") or all(
        b.key != "s3-digits-job" for b in page.button
    )  # watched, not offered
    job.request_cancel()
    assert wait_for_state(job, ("cancelled", "done"), timeout=120)["state"] == "cancelled"


def test_section_4_gamma_zero_means_no_perturbation_and_no_steps_says_nothing_moves(chapter):
    page = chapter(4)
    assert dict(_metrics(page))["η*"] != "0"
    page.slider(key="s4-gamma").set_value(0.0).run()
    assert dict(_metrics(page))["‖δ‖ = γ·η*·‖g‖"] == "0"
    page.slider(key="s4-steps").set_value(0).run()
    assert any("nothing visible changes" in i.value for i in page.info)
    assert len(_chart(page, "s4-boundary")["layout"]["annotations"]) == 1  # no "after" panel


def test_section_5_rescaling_moves_the_hessian_but_not_the_adaptive_sharpness(chapter):
    page = chapter(5)
    page.select_slider(key="s5-alpha").set_value(10.0).run()
    rows = page.table[-1].value
    orig, scaled = rows.columns
    top = "λ_max (Lanczos, ± residual)"
    assert rows.loc[top, scaled] != rows.loc[top, orig]
    assert all(" ± " in v for v in rows.loc[[top, "trace (Hutchinson, ± one s.e.)"]].values.flat)
    assert (
        rows.loc["adaptive worst-case sharpness (ρ = 0.05)", scaled]
        == rows.loc["adaptive worst-case sharpness (ρ = 0.05)", orig]
    )
    page.select_slider(key="s5-alpha").set_value(1.0).run()
    rows = page.table[-1].value
    assert (rows.iloc[:, 0] == rows.iloc[:, 1]).all()  # alpha 1 changes nothing
    page.button(key="s5-table").click().run()
    assert len(page.dataframe[0].value) == 6
    assert any("Spearman rank correlation" in m.value for m in page.markdown)


def test_section_6_the_learning_rate_moves_both_runs_and_the_numbers_are_the_engines(chapter):
    page = chapter(6)

    def shown(at):
        data = _chart(at, "s6-fig")["data"]  # per run: loss, λ_max, 2/η
        return [(d["name"], d["y"]) for d in data]

    before = shown(page)
    assert [name for name, _ in before][2] == "η = 0.2: 2/η = 10"
    assert before[1][1] == learn.edge_of_stability(0.2).lam_max
    assert before[4][1] == learn.edge_of_stability(0.1).lam_max
    assert any(
        "Cohen et al., *Gradient Descent on Neural Networks" in c.value for c in page.caption
    )
    page.select_slider(key="s6-lr").set_value(0.4).run()
    after = shown(page)
    fast, slow = learn.edge_of_stability(0.4), learn.edge_of_stability(0.2)
    assert after[0][1] == fast.loss and after[1][1] == fast.lam_max
    assert after[2][1] == [2 / 0.4, 2 / 0.4] and after[5][1] == [2 / 0.2, 2 / 0.2]
    assert after[4][1] == slow.lam_max and after != before
    metrics = _metrics(page)
    assert ("λ_max at step 0", _fmt(fast.lam_max[0])) in metrics
    last = [lam / fast.threshold for lam in fast.lam_max[len(fast.lam_max) * 3 // 4 :]]
    assert ("λ_max ÷ (2/η), last quarter", f"{sum(last) / len(last):.2f}") in metrics
    assert ("final training loss", _fmt(fast.loss[-1])) in metrics
    assert min(last) >= 0.8 and max(last) <= 1.2  # on the edge, as section 6 says
    assert f"{min(last):.2f}–{max(last):.2f} of 2/η = 5" in " ".join(m.value for m in page.markdown)


def _texts(at) -> list[str]:
    return [m.value for m in at.markdown] + [c.value for c in at.caption]


def test_the_first_view_is_read_from_the_shipped_results_and_nothing_is_computed(
    chapter, runs_root
):
    from app.learn.common import store

    for n in range(1, 7):
        chapter(n)
    # assets/learn holds every result each chapter's first view shows, for this engine's sources
    assert store().computed == [], "stale shipped results: run python assets/make_learn_cache.py"
    assert not list(runs_root.glob(".cache/learn/*"))


def test_one_symbol_one_meaning_l_prime_is_a_slope_and_l_w_the_weak_batch_loss(chapter):
    pages = [chapter(n) for n in range(1, 7)]
    words = " ".join(
        text
        for at in pages
        for text in _texts(at)
        + [json.dumps(json.loads(c.proto.spec)) for c in at.get("plotly_chart")]
    )
    page = pages[3]  # chapter 4: PoF's steps
    assert "L'" not in words  # one spelling
    primes = re.findall(r"L[′″]\S{0,3}", words)
    assert primes and all(p.startswith(("L′(0)", "L″(0)")) for p in primes), primes
    section4 = " ".join(t for t in _texts(page) if "weak" in t)
    assert (
        "L_w(w0)" in section4
        and "L_w(w0)" in _chart(page, "s4-search")["layout"]["annotations"][0]["text"]
    )
    assert "worst case" not in words


def test_section_1_says_at_a_minimum_and_orders_the_pair_as_the_engine_measures(chapter, fresh):
    page = chapter(1)
    intro = next(t for t in _texts(page) if t.startswith("Near a minimum"))
    assert "where the gradient is zero" in intro and "Only at a minimum" in intro
    labels = {SHARP: "large-batch SGD", FLAT: "small-batch SAM"}
    top = {labels[r]: c.top.eigenvalues[0] for r, (_, c) in fresh.items()}
    adaptive = {labels[r]: c.adaptive.increase for r, (_, c) in fresh.items()}
    by_top, by_adaptive = max(top, key=top.get), max(adaptive, key=adaptive.get)
    text = next(t for t in _texts(page) if t.startswith("λ_max is"))
    assert f"larger for the {by_top} network" in text
    assert ("orders them the other way" in text) == (by_top != by_adaptive)
    slopes = next(t for t in _texts(page) if t.startswith("How near a minimum"))
    for r in fresh:
        s = learn.eigen_slice(r, 1.5)
        assert f"{labels[r]}: L′(0) = {_fmt(s.slope)}" in slopes


def test_section_2_names_the_networks_by_recipe_and_states_what_was_measured(chapter, fresh):
    page = chapter(2)
    text = next(t for t in _texts(page) if t.startswith("Measured on these two networks"))
    (a, _), (b, _) = fresh[SHARP], fresh[FLAT]
    assert f"test losses are {_fmt(a.test_loss)} and {_fmt(b.test_loss)}" in text
    assert f"test accuracies {a.test_acc:.1%} and {b.test_acc:.1%}" in text
    lower = "large-batch SGD" if a.test_loss < b.test_loss else "small-batch SAM"
    if f"{a.test_acc:.1%}" == f"{b.test_acc:.1%}":
        assert "only the test loss" in text and f"lower for the {lower} network" in text
    rise = {r: learn.train_test_slice(r, 1.0, 0, shift=0.3).shift_rise for r in (SHARP, FLAT)}
    same = (rise[SHARP] < rise[FLAT]) == (a.test_loss < b.test_loss)
    assert (", the same network whose" in text) == same
    # the pair is named by recipe: no sentence about these two calls one "the flat/sharp network"
    section2 = text + next(c.value for c in page.caption if "the shift costs" in c.value)
    assert not re.search(r"\b(the )?(flat|sharp)(ter)? (one|network)", section2), section2
    assert "generalize better" not in section2
