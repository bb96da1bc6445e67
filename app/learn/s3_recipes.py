"""Section 3 of the Learn page, what makes minima flat or sharp: two recipes of the reader's choice,
each trained to the same training loss, side by side (decision boundaries, a loss surface, the
Hessian)."""

import streamlit as st

from analysis.learn_results import Picture, Recipe
from analysis.measures.results import Landscape
from app.figures.landscapes import contours_2d
from app.figures.learn import MapPanel, decision_maps
from app.figures.spectra import hessian_bars
from app.learn.common import (
    BATCHES,
    LARGE_BATCH,
    SMALL_SAM,
    TOY,
    curvature,
    engine,
    fmt,
    refs,
    stored,
    trained,
)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def picture(r: Recipe) -> Picture:
    def compute():
        d = engine().toy_data(r.dataset, r.points, r.noise)
        return Picture(engine().decision_map(engine().train(r).model, d), engine().points(d))

    return stored("picture", Picture, compute, r=r)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def surface(r: Recipe) -> Landscape:
    return stored("surface", Landscape, lambda: engine().surface(r), r=r)


def recipe_inputs(col, key: str, default: Recipe, dataset: str, target: float) -> Recipe:
    batch = col.select_slider(
        "Batch size",
        BATCHES,
        value=default.batch_size,
        key=f"{key}-batch",
        format_func=lambda b: "all 100 (full batch)" if b == 100 else str(b),
    )
    opt = col.radio(
        "Optimizer",
        ["sgd", "sam"],
        index=["sgd", "sam"].index(default.optimizer),
        horizontal=True,
        key=f"{key}-opt",
        format_func=str.upper,
    )
    rho = col.slider(
        "SAM's radius ρ", 0.01, 0.5, default.rho, 0.01, key=f"{key}-rho", disabled=opt != "sam"
    )
    rho = (
        rho if opt == "sam" else Recipe().rho
    )  # SGD ignores it: one network, not one per slider value
    lr = col.select_slider(
        "Learning rate", [0.01, 0.03, 0.1, 0.3], value=default.lr, key=f"{key}-lr"
    )
    return Recipe(
        dataset=dataset,
        points=TOY["points"],
        noise=TOY["noise"],
        batch_size=batch,
        optimizer=opt,
        rho=rho,
        lr=lr,
        target_loss=target,
    )


@st.fragment
def what_makes_them() -> None:
    st.header("3. What makes minima flat or sharp")
    st.markdown(
        "How a network is trained decides which minimum it ends in. **Small batches** take noisy "
        "steps that "
        "cannot settle in a narrow valley (Keskar et al. 2017). **SAM** (Foret et al. 2021) takes "
        "each step with the "
        "gradient taken at the (approximately) worst point within a radius ρ, so it favours "
        "regions whose whole "
        "neighbourhood is low. "
        "Choose two recipes. Each trains a fresh network until its training loss first reaches "
        "the target, so the "
        "two are compared at the same training loss, not after the same number of steps."
    )
    c0, c1 = st.columns(2)
    dataset = c0.selectbox(
        "Data (100 training points)", ["moons", "circles", "spirals"], key="s3-data"
    )
    target = c1.select_slider(
        "Target training loss", [0.3, 0.25, 0.2, 0.15, 0.1], value=0.15, key="s3-target"
    )
    ca, cb = st.columns(2)
    ca.markdown("**Recipe A**")
    cb.markdown("**Recipe B**")
    ra = recipe_inputs(ca, "s3-a", LARGE_BATCH, dataset, target)
    rb = recipe_inputs(cb, "s3-b", SMALL_SAM, dataset, target)
    recipes = {f"A: {ra.describe()}": ra, f"B: {rb.describe()}": rb}
    summaries = {label: trained(r) for label, r in recipes.items()}
    pictures = {label: picture(r) for label, r in recipes.items()}
    chance = 1 / len(set(pictures[f"A: {ra.describe()}"].points.label))  # the data's classes
    for label, t in summaries.items():
        if t.diverged or t.train_acc <= chance + 0.05:
            st.error(
                f"{label} {'diverged' if t.diverged else 'collapsed to chance'} "
                f"(training accuracy {t.train_acc:.0%}): its learning rate is too large for "
                "this batch; "
                "lower it. Nothing about it can be measured."
            )
        elif not t.reached_target:
            st.warning(
                f"{label} did not reach the target loss in {t.steps} steps (it stopped at "
                f"{fmt(t.train_loss)}); compare at a higher target, or give it a larger "
                "learning rate."
            )
    if any(t.diverged for t in summaries.values()):
        refs("keskar", "foret", "li")
        return
    st.plotly_chart(
        decision_maps(
            {label: MapPanel(picture(r).map, picture(r).points) for label, r in recipes.items()}
        ),
        width="stretch",
        key="s3-boundary",
    )
    st.caption(
        "What to look at: where each network draws the line between the classes (black), over the "
        "training points. Different recipes, similar training loss, different boundaries."
    )
    st.plotly_chart(
        contours_2d({label: surface(r) for label, r in recipes.items()}),
        width="stretch",
        key="s3-surface",
    )
    st.caption(
        "What to look at: the training loss on a plane through each solution (two "
        "filter-normalized random "
        "directions, ±1): the wider the dark basin around the centre, the flatter the minimum."
    )
    st.plotly_chart(
        hessian_bars({label: curvature(r).hessian() for label, r in recipes.items()}),
        width="stretch",
        key="s3-bars",
    )
    st.caption(
        "What to look at: λ_max and the trace, whole network and last layer (exact), side by side."
    )
    cols = st.columns(2)
    for col, (label, t) in zip(cols, summaries.items(), strict=True):
        col.markdown(
            f"**{label}**: {t.steps} steps, training loss {fmt(t.train_loss)}, "
            f"test loss {fmt(t.test_loss)}, test accuracy {t.test_acc:.1%}"
        )
