"""Section 1 of the Learn page, what flatness is: the loss along each network's top eigenvector
next to its quadratic model, and the curvature measured several ways."""

import streamlit as st

from analysis.learn_results import EigenSlice, Recipe
from app.figures.learn import eigen_slices
from app.learn.common import (
    PAIR,
    TOP,
    TOY,
    TRACE,
    curvature,
    engine,
    fmt,
    refs,
    stored,
    top_text,
    trace_text,
    trained,
)


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def eigen_slice(r: Recipe, width: float) -> EigenSlice:
    return stored(
        "eigen-slice", EigenSlice, lambda: engine().eigen_slice(r, width), r=r, width=width
    )


@st.fragment
def what_flatness_is() -> None:
    st.header("1. What flatness is")
    st.markdown(
        "Near a minimum w\\*, where the gradient is zero, the loss is nearly quadratic: "
        "L(w\\* + t·v) ≈ L(w\\*) + ½·t²·vᵀHv, where H is the **Hessian**, the matrix of second "
        "derivatives of the loss with respect to the weights. Of all unit directions v, H's top "
        "eigenvector is the one along which the loss curves upward most, and that curvature is "
        "the **top eigenvalue λ_max**: large λ_max, sharp minimum; small λ_max, flat minimum. "
        "Only at a minimum is it also the direction in which the loss climbs fastest: elsewhere "
        "the gradient's linear term dominates near w. The **trace** of H, the sum of all its "
        "eigenvalues, sums the curvature over all directions. The two networks below were "
        f"trained on the same {TOY['points'] // 2} points until their training loss first fell "
        f"to {TOY['target_loss']:g} — the same height, different shapes. Training stopped "
        "there, so each sits near, not exactly at, the bottom of its valley: along the "
        "eigenvector a small slope L′(0) remains, which the dashed model keeps. (On this page "
        "L′(0) and L″(0) are always the slope and second derivative at t = 0 of the curve drawn.)"
    )
    width = st.slider(
        "How far to walk along the top eigenvector (t, in parameter-space distance)",
        0.1,
        4.0,
        1.5,
        0.1,
        key="s1-width",
    )
    slices = {label: eigen_slice(r, width) for label, r in PAIR.items()}
    st.plotly_chart(eigen_slices(slices), width="stretch", key="s1-fig")
    st.caption(
        "What to look at: near t = 0 each curve sits on its dashed parabola, whose curvature is "
        "that "
        "network's λ_max. Widen the walk: further out the real loss leaves the quadratic picture."
    )
    rows = {}
    for (
        label,
        r,
    ) in PAIR.items():  # one table: five numbers per network do not fit side by side as metrics
        c, t = curvature(r), trained(r)
        rows[label] = {
            "recipe": f"{r.describe()}, {t.steps} steps",
            "training loss": fmt(t.train_loss),
            TOP: top_text(c),
            "L″(0) of the curve (central difference)": fmt(slices[label].second_derivative),
            TRACE: trace_text(c),
            f"adaptive sharpness (ρ = {c.adaptive.radius:g})": fmt(c.adaptive.increase),
        }
    st.table(rows)
    st.caption(
        "L″(0) is λ_max found another way: the curve's own second derivative at t = 0. Adaptive "
        "sharpness is the largest rise of the training loss within a ball scaled by |w| per "
        "weight (Kwon et "
        "al. 2021): unchanged when layers are rescaled (chapter 5)."
    )
    near = ", ".join(
        f"{label}: L′(0) = {fmt(s.slope)}, t > {fmt(2 * abs(s.slope) / s.eigenvalue)}"
        for label, s in slices.items()
    )
    st.markdown(
        "How near a minimum: the slope's term t·L′(0) is smaller than the curvature's ½·λ_max·t² "
        f"once |t| > 2·|L′(0)|/λ_max ({near}), so beyond that the eigenvector's curvature, not the "
        "leftover slope, shapes the curve."
    )
    st.markdown(ordering({label: curvature(r) for label, r in PAIR.items()}))
    refs("hochreiter", "keskar", "kwon")


def ordering(c: dict) -> str:
    """Which network each measure calls the sharper, from the measured numbers."""
    (a, ca), (b, cb) = c.items()
    top = {a: ca.top.eigenvalues[0], b: cb.top.eigenvalues[0]}
    adaptive = {a: ca.adaptive.increase, b: cb.adaptive.increase}
    by_top, by_adaptive = max(top, key=top.get), max(adaptive, key=adaptive.get)
    ratio = max(top.values()) / min(top.values())
    text = (
        f"λ_max is {ratio:.1f} times larger for the {by_top} network; adaptive sharpness "
        f"({fmt(adaptive[a])} vs {fmt(adaptive[b])}) "
    )
    if by_top == by_adaptive:
        return text + "orders the two the same way, and no rescaling of layers can change it."
    return (
        text + f"**orders them the other way**: it is larger for the {by_adaptive} network. Part "
        "of the λ_max gap is the scale of the weights, not the shape of the valley: which of "
        'the two is "flatter" depends on how flatness is measured — chapter 5 shows why.'
    )
