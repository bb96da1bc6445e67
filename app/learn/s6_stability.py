"""Section 6 of the Learn page, the edge of stability: a tiny network trained by full-batch
gradient descent at a chosen step size η, its training loss and λ_max over the steps against 2/η,
beside the same network trained at half the step size."""

import streamlit as st

from analysis.learn_results import EOS_EVERY, EOS_SETTINGS, EOS_STEPS, EdgeOfStability
from app.figures.learn import edge_of_stability
from app.learn.common import engine, fmt, refs, stored

LRS = [0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5]


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def stability(eta: float) -> EdgeOfStability:
    return stored(
        "edge-of-stability", EdgeOfStability, lambda: engine().edge_of_stability(eta), eta=eta
    )


def last_quarter(r: EdgeOfStability) -> list[float]:
    """λ_max over the last quarter of the measured steps, as fractions of 2/η."""
    return [lam / r.threshold for lam in r.lam_max[len(r.lam_max) * 3 // 4 :]]


@st.fragment
def edge_of_stability_section() -> None:
    st.header("6. The edge of stability")
    st.markdown(
        "Gradient descent w ← w − η·∇L(w) on a quadratic bowl of curvature λ converges only if "
        "λ < **2/η**: "
        "beyond it, each step overshoots the bottom by more than it started and the iterates "
        "blow up. The classical "
        "advice is therefore to pick η below 2/λ_max. Cohen et al. (2021) watched λ_max while "
        "neural networks "
        "trained with full-batch gradient descent and found something else: λ_max **rises** "
        "(progressive "
        "sharpening) until it reaches 2/η, and then **hovers around 2/η** — the edge of "
        "stability — while the "
        "loss keeps falling, unevenly, over many steps. The step size sets how sharp a region "
        "gradient descent "
        "can stay in: a larger η keeps the network flatter. Below: "
        f"{EOS_SETTINGS}, {EOS_STEPS} steps, λ_max (Lanczos, each warm-started "
        f"from the last eigenvector) every {EOS_EVERY} steps; beside it the same network "
        "trained at half the step size."
    )
    eta = st.select_slider("Learning rate η", LRS, value=0.2, key="s6-lr")
    runs = {f"η = {eta:g}": stability(eta), f"η = {eta / 2:g} (half)": stability(eta / 2)}
    for label, r in runs.items():
        if r.diverged:
            st.warning(
                f"{label}: the loss became NaN or infinite after step {r.steps[-1]}: shown up to "
                "there."
            )
    first, half = runs.values()
    st.plotly_chart(edge_of_stability(runs), width="stretch", key="s6-fig")
    st.caption(
        "What to look at: on the right, each solid λ_max curve climbs towards its own dotted "
        "line 2/η; once it gets there it stops climbing and hovers on the line, while on the left "
        "its loss keeps falling, with spikes. Half the step size puts the line twice as high: "
        "there λ_max keeps climbing below it."
        + (
            f" At η = {eta:g} even the larger step does not reach its line within "
            f"{EOS_STEPS} steps: move the slider right."
            if max(first.lam_max) < 0.9 * first.threshold
            else ""
        )
    )
    cols = st.columns(len(runs))
    for col, (label, r) in zip(cols, runs.items(), strict=True):
        last = last_quarter(r)
        col.markdown(f"**{label}** (2/η = {fmt(r.threshold)})")
        a, b, c = col.columns(3)
        a.metric("λ_max at step 0", fmt(r.lam_max[0]))
        b.metric(
            "λ_max ÷ (2/η), last quarter",
            f"{sum(last) / len(last):.2f}",
            help="the mean of λ_max over the last quarter of the steps, as a fraction of 2/η "
            f"(1: on the edge); it ranges from {min(last):.2f} to {max(last):.2f}",
        )
        c.metric("final training loss", fmt(r.loss[-1]))
    unconverged = sum(not ok for r in runs.values() for ok in r.converged)
    per_point = sum(r.hvps for r in runs.values()) / sum(len(r.steps) for r in runs.values())
    st.markdown(
        f"Measured: at η = {eta:g}, λ_max starts at {fmt(first.lam_max[0])} and spends the last "
        f"quarter of training at {min(last_quarter(first)):.2f}–{max(last_quarter(first)):.2f} "
        f"of 2/η = {fmt(first.threshold)}; the loss falls from {fmt(first.loss[0])} to "
        f"{fmt(first.loss[-1])}. At η = {eta / 2:g}, λ_max ends at {fmt(half.lam_max[-1])}, "
        f"{half.lam_max[-1] / half.threshold:.2f} of its own 2/η. "
        f"Each λ_max took {per_point:.1f} "
        "Hessian-vector products on average; largest residual ‖Hv − λv‖ "
        f"{max(max(r.residual) for r in runs.values()):.1e}"
        + (f", {unconverged} short of Lanczos' tolerance." if unconverged else ".")
    )
    refs("cohen")
