"""The Learn page in a real browser, top to bottom: each section's figure is drawn, and moving one
slider in each section redraws that section's figure with new numbers while the others stay put."""

import time

from test_browser import _shot

# section -> (the slider moved, the figure that must change)
SECTIONS = {
    "1. What flatness is": ("s1-width", "s1-fig"),
    "2. Why it might matter": ("s2-shift", "s2-fig"),
    "3. What makes minima flat or sharp": ("s3-a-batch", "s3-bars"),
    "4. What PoF does, step by step": ("s4-gamma", "s4-search"),
    "5. The caveats": ("s5-alpha", "s5-bars"),
    "6. The edge of stability": ("s6-lr", "s6-fig"),
}


def _figure_data(page, key: str) -> str:
    """What a Plotly chart currently shows (its traces' x, y, z and its lines and labels), read from
    the chart element Plotly itself fills."""
    return page.evaluate(
        "key => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
        f" return {SHOWN}; }}",
        key,
    )


# (benchmarks/learn_interactions.py reads the charts with the same expression)
SHOWN = (
    "e && e.data ? JSON.stringify([e.data.map(t => [t.x, t.y, t.z]), "
    "(e.layout.shapes || []).map(s => [s.x0, s.y0]), "
    "(e.layout.annotations || []).map(a => a.text)]) : null"
)


def _all_figures(page) -> dict:
    return {fig: _figure_data(page, fig) for _, fig in SECTIONS.values()}


def test_each_section_redraws_its_own_figure_when_its_slider_moves(server, page, tmp_path):
    url, _ = server
    page.goto(url + "/learn")
    page.get_by_text("Learn: what a flat minimum is").wait_for(timeout=60_000)
    for header in SECTIONS:  # the first visit trains the networks
        page.get_by_role("heading", name=header).wait_for(timeout=120_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(e => (e.data || []).length).length >= 10",
        timeout=120_000,
    )
    _shot(page, tmp_path, "learn-page")
    for header, (slider, fig) in SECTIONS.items():
        before = _all_figures(page)
        assert before[fig], f"{header}: figure {fig} is not drawn"
        thumb = page.locator(f".st-key-{slider} input[type=range]").first
        page.locator(f".st-key-{slider}").scroll_into_view_if_needed()
        thumb.focus()
        page.keyboard.press("ArrowLeft")
        t0 = time.perf_counter()
        page.wait_for_function(
            "([key, old]) => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
            f" const now = {SHOWN}; return now !== null && now !== old; }}",
            arg=[fig, before[fig]],
            timeout=30_000,
        )
        elapsed = time.perf_counter() - t0
        page.wait_for_function(
            "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=30_000
        )
        after = _all_figures(page)
        # only this section reran: the other sections' figures are exactly as they were
        assert {k: v for k, v in after.items() if k != fig} == {
            k: v for k, v in before.items() if k != fig
        }, header
        print(f"{header}: redrawn {elapsed:.2f} s after the slider moved")
        _shot(page, tmp_path, f"learn-{slider}")
    assert not page.locator("[data-testid=stException]").count()


def test_a_first_visit_draws_every_section_from_the_shipped_results(server, page):
    """A new user's first visit (an empty runs folder) trains and measures nothing: every result
    comes from assets/learn, verified, and nothing is written to the runs folder's cache."""
    url, runs = server
    t0 = time.perf_counter()
    page.goto(url + "/learn")
    for header in SECTIONS:
        page.get_by_role("heading", name=header).wait_for(timeout=120_000)
    page.wait_for_function(
        "[...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(e => (e.data || []).length).length >= 10",
        timeout=120_000,
    )
    page.wait_for_function(
        "!document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000
    )
    print(f"first visit drawn in {time.perf_counter() - t0:.2f} s")
    assert not page.locator("[data-testid=stException]").count()
    computed = list(runs.glob(".cache/learn/*"))
    assert not computed, f"computed {computed}: run python assets/make_learn_cache.py if stale"
