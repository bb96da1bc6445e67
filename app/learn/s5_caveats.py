"""Section 5 of the Learn page, the caveats: rescaling layers changes the Hessian but not the
function, flatness against test loss over six recipes, and what the PoF paper measured."""

import streamlit as st

from analysis.learn_results import FlatnessTable, Recipe, RescalingReport
from app.figures.landscapes import slices_1d
from app.figures.spectra import hessian_bars
from app.learn.common import (
    SMALL_SAM,
    TOP,
    TOY,
    TRACE,
    engine,
    fmt,
    refs,
    stored,
    top_text,
    trace_text,
)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def rescaling(alpha: float) -> RescalingReport:
    return stored(
        "rescaling",
        RescalingReport,
        lambda: engine().rescaling_report(SMALL_SAM, alpha),
        r=SMALL_SAM,
        alpha=alpha,
    )


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def flatness_table() -> FlatnessTable:
    recipes = [
        Recipe(batch_size=b, optimizer=o, rho=0.2, **TOY)
        for b in (8, 32, 100)
        for o in ("sgd", "sam")
    ]
    return engine().flatness_and_test_loss(recipes)


@st.fragment
def caveats() -> None:
    st.header("5. The caveats")
    st.markdown(
        "**Sharpness depends on how the function is written down.** A ReLU network computes the "
        "same function if "
        "one layer's weights are multiplied by α > 0 and the next layer's divided by α, yet its "
        "Hessian changes: "
        "any minimum can be made as sharp as you like without changing a single prediction (Dinh "
        "et al. 2017). "
        "Two answers: measure along **filter-normalized** directions (Li et al. 2018), scaled to "
        "the weights, or "
        "use **adaptive sharpness** (Kwon et al. 2021), which measures the worst loss within a "
        "ball scaled by |w|. "
        "Both are unchanged by this rescaling. Try it on chapter 1's small-batch + SAM network:"
    )
    alpha = st.select_slider(
        "α: scale the first layer by α and the second by 1/α",
        [0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0],
        value=5.0,
        key="s5-alpha",
    )
    rep = rescaling(alpha)
    models = rep.models
    st.plotly_chart(
        hessian_bars({k: v.curvature.hessian() for k, v in models.items()}),
        width="stretch",
        key="s5-bars",
    )
    st.caption(
        "What to look at: the same function, a different Hessian — λ_max and the trace move with α."
    )
    st.plotly_chart(
        slices_1d({k: v.slice for k, v in models.items()}), width="stretch", key="s5-slices"
    )
    st.caption(
        "What to look at: along a filter-normalized direction the two curves lie on top of each "
        "other."
    )
    rows = {
        k: {
            TOP: top_text(v.curvature),
            TRACE: trace_text(v.curvature),
            f"worst-case sharpness (ρ = {v.sharpness.radius:g})": fmt(v.sharpness.increase),
            f"adaptive worst-case sharpness (ρ = {v.adaptive.radius:g})": fmt(v.adaptive.increase),
        }
        for k, v in models.items()
    }
    st.table(rows)
    st.caption(
        "Largest change of any output (logit) on the training points: "
        f"{rep.max_logit_change:.1e} "
        "(rounding only)."
    )
    st.markdown(
        "**Flatness is correlated with generalization, not a guarantee of it.** Large studies "
        "find sharpness "
        "measures among the better predictors of the generalization gap (Jiang et al. 2020), but "
        "no measure "
        "that always holds; on small "
        "problems other differences (how long a network trained, how far its boundary bends) can "
        "outweigh it. "
        "Measure it here across six recipes:"
    )
    if st.button("Train six recipes and compare flatness with test loss", key="s5-table"):
        st.session_state["s5-shown"] = True
    if st.session_state.get("s5-shown"):
        t = flatness_table()
        st.dataframe([r.to_dict() for r in t.rows], hide_index=True)
        st.markdown(
            "Spearman rank correlation between λ_max and test loss over these six: "
            f"**{t.spearman:+.2f}** "
            "(+1: the sharper, the worse, every time). Six tiny networks on 100 points are an "
            "illustration, not evidence either way."
        )
    st.markdown(
        "**What the PoF paper measured, and what this page cannot show.** Sato et al. post-trained "
        "WideResNet-28-10 networks on CIFAR-10, CIFAR-100, SVHN and Fashion-MNIST for 10 to 50 "
        "epochs, reported "
        "lower test error, and showed that PoF implicitly reduces the Hessian of the loss with "
        "respect to the last "
        "layer. Those effects need real data, real networks and many steps; a two-moons MLP shows "
        "the mechanics — the weak batch, the line search, the perturbed "
        "boundary, the exact Hessian — not the size of the benefit. For that, post-train on the "
        "Post-train page "
        "and compare before and after on the Compare page."
    )
    refs("dinh", "li", "kwon", "jiang", "sato")
