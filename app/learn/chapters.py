"""The Learn page's six chapters, one page each (app/views/learn/, listed under "Learn" in the
app's navigation): a first visit draws one section's figures, not all ten at once, and each
chapter has its own address to share. `show` draws a chapter: the page's introduction (first
chapter) or where the chapter stands, its sections, and the way on."""

from dataclasses import dataclass

import streamlit as st

TITLE = "Learn: what a flat minimum is"


@dataclass(frozen=True)
class Chapter:
    page: str  # the page file, as app/main.py registers it
    title: str  # its section's header
    url: str  # its address: /learn is the first


CHAPTERS = [
    Chapter("views/learn/flatness.py", "1. What flatness is", "learn"),
    Chapter("views/learn/shift.py", "2. Why it might matter", "learn-why-it-matters"),
    Chapter("views/learn/recipes.py", "3. What makes minima flat or sharp", "learn-recipes"),
    Chapter("views/learn/pof_steps.py", "4. What PoF does, step by step", "learn-pof"),
    Chapter("views/learn/caveats.py", "5. The caveats", "learn-caveats"),
    Chapter("views/learn/stability.py", "6. The edge of stability", "learn-edge-of-stability"),
]


def pages() -> list:
    """The chapters as st.Page objects, for st.navigation."""
    return [st.Page(c.page, title=c.title, url_path=c.url) for c in CHAPTERS]


def show(number: int, *sections) -> None:
    """Chapter `number` (from 1): its sections (functions that draw them), then a link to the
    next chapter and one to the previous."""
    if number == 1:
        st.title(TITLE)
        st.markdown(
            "A minimum of the training loss is **flat** when the loss stays low as the weights "
            "move away from it, and **sharp** when it climbs quickly. The idea that flat minima "
            "generalize better is old (Hochreiter & Schmidhuber 1997) and still debated. These "
            f"{len(CHAPTERS)} chapters show it with experiments small enough to run while you "
            "watch: tiny networks on 2-D point sets, trained and measured by the same engine as "
            "the rest of the app. Every number is computed, not typed in: the networks and "
            "measurements a chapter opens with come with the app, checked before they are used, "
            "so a first visit trains nothing; a setting never computed before (another recipe, "
            "another γ) is trained and measured while you wait — about a second on an idle "
            "2-core machine, several times that on a busy one."
        )
        st.caption("The figures: drag to zoom, double-click to reset; hover for values.")
    else:
        st.caption(f"{TITLE} · chapter {number} of {len(CHAPTERS)}")
    for draw in sections:
        draw()
    before, after = st.columns(2)
    if number > 1:
        c = CHAPTERS[number - 2]
        before.page_link(c.page, label=f"Back: {c.title}", icon=":material/arrow_back:")
    if number < len(CHAPTERS):
        c = CHAPTERS[number]
        after.page_link(c.page, label=f"Next: {c.title}", icon=":material/arrow_forward:")

    from app.learn.common import warm_up  # here: app/main.py imports this module for every page

    warm_up()  # the first new slider value then finds its imports done
