"""The Learn chapters in a real browser, as a reader goes through them: each chapter's figures are
drawn, moving its slider redraws its figure with new numbers, and its "Next" link leads to the next
chapter at its own address."""

import time

from test_browser import _shot

# chapter -> (its address, the slider moved, the figure that must change)
CHAPTERS = {
    "1. What flatness is": ("/learn", "s1-width", "s1-fig"),
    "2. Why it might matter": ("/learn-why-it-matters", "s2-shift", "s2-fig"),
    "3. What makes minima flat or sharp": ("/learn-recipes", "s3-a-batch", "s3-bars"),
    "4. What PoF does, step by step": ("/learn-pof", "s4-gamma", "s4-search"),
    "5. The caveats": ("/learn-caveats", "s5-alpha", "s5-bars"),
    "6. The edge of stability": ("/learn-edge-of-stability", "s6-lr", "s6-fig"),
}
FIGURES = [1, 1, 3, 2, 2, 1]  # figures per chapter

# (benchmarks/learn_interactions.py reads the charts with the same expression)
SHOWN = (
    "e && e.data ? JSON.stringify([e.data.map(t => [t.x, t.y, t.z]), "
    "(e.layout.shapes || []).map(s => [s.x0, s.y0]), "
    "(e.layout.annotations || []).map(a => a.text)]) : null"
)
DRAWN = "[...document.querySelectorAll('.js-plotly-plot')].filter(e => (e.data || []).length)"
CHARTS = "document.querySelectorAll('.js-plotly-plot').length"  # drawn or not
IDLE = "!document.querySelector('[data-testid=\"stStatusWidget\"]')"


def _figure(page, key: str):
    return page.evaluate(
        f"key => {{ const e = document.querySelector(`.st-key-${{key}} .js-plotly-plot`);"
        f" return {SHOWN}; }}",
        key,
    )


def _drawn(page, header: str, figures: int, key: str) -> None:
    """Until the chapter's header shows, its own figure `key` holds data, the page holds exactly the
    chapter's number of charts, all drawn (the chapter before has gone), and its run is over."""
    page.get_by_role("heading", name=header).wait_for(timeout=120_000)
    page.wait_for_function(
        "key => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
        " return !!(e && e.data && e.data.length); }",
        arg=key,
        timeout=120_000,
    )
    page.wait_for_function(
        f"{DRAWN}.length === {figures} && {CHARTS} === {figures}", timeout=120_000
    )
    page.wait_for_function(IDLE, timeout=60_000)


def test_a_reader_goes_through_the_chapters_moving_each_slider(server, page, tmp_path):
    url, _ = server
    page.goto(url + "/learn")
    page.get_by_text("Learn: what a flat minimum is").wait_for(timeout=60_000)
    sidebar = page.get_by_test_id("stSidebarNav")
    for header in CHAPTERS:  # every chapter is listed in the navigation, under "Learn"
        assert sidebar.get_by_role("link", name=header).count() == 1, header
    for i, (header, (path, slider, fig)) in enumerate(CHAPTERS.items()):
        _drawn(page, header, FIGURES[i], fig)
        assert page.url == url + path
        _shot(page, tmp_path, f"learn-{i + 1}")
        before = _figure(page, fig)
        assert before, f"{header}: figure {fig} is not drawn"
        page.locator(f".st-key-{slider}").scroll_into_view_if_needed()
        page.locator(f".st-key-{slider} input[type=range]").first.focus()
        page.keyboard.press("ArrowLeft")
        t0 = time.perf_counter()
        page.wait_for_function(
            "([key, old]) => { const e = document.querySelector(`.st-key-${key} .js-plotly-plot`);"
            f" const now = {SHOWN}; return now !== null && now !== old; }}",
            arg=[fig, before],
            timeout=30_000,
        )
        elapsed = time.perf_counter() - t0
        page.wait_for_function(IDLE, timeout=30_000)
        # Still here, with this chapter's figures only. Waited for, not read at once: the status
        # widget shows a run only after a delay, and while a run ends the chart it replaced can
        # stay in the page for a moment (CI, two workers busy: 2 charts read at once on chapter 1).
        page.wait_for_function(f"{CHARTS} === {FIGURES[i]}", timeout=30_000)
        assert page.url == url + path
        print(f"{header}: redrawn {elapsed:.2f} s after the slider moved")
        if i + 1 < len(CHAPTERS):
            following = list(CHAPTERS)[i + 1]
            page.get_by_role("link", name=f"Next: {following}").click()
    assert not page.locator("[data-testid=stException]").count()
    page.get_by_role("link", name="Back: 5. The caveats").click()
    _drawn(page, "5. The caveats", 2, "s5-bars")
    assert page.url == url + "/learn-caveats"


def test_a_first_visit_to_any_chapter_draws_it_from_the_shipped_results(server, page):
    """A new user's first visit (an empty runs folder), at any chapter's address, trains and
    measures nothing: every result comes from assets/learn, verified, and nothing is written to the
    runs folder's cache."""
    url, runs = server
    for i, (header, (path, _, fig)) in enumerate(CHAPTERS.items()):
        t0 = time.perf_counter()
        page.goto(url + path)
        _drawn(page, header, FIGURES[i], fig)
        print(f"{path}: drawn in {time.perf_counter() - t0:.2f} s")
        assert not page.locator("[data-testid=stException]").count()
    computed = list(runs.glob(".cache/learn/*"))
    assert not computed, f"computed {computed}: run python assets/make_learn_cache.py if stale"
