"""Section 4 of the Learn page, what PoF does step by step: its steps (docs/method.md) on the
bundled two-moons MLP (weak batch, gradient, line search, perturbed boundary, feature training),
every number measured."""

import streamlit as st

from analysis.cache import file_digest
from analysis.learn_results import PoFWalkthrough, Points
from app.figures.learn import MapPanel, decision_maps, line_search_figure
from app.learn.common import MOONS, POF, engine, fmt, refs, stored


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def walkthrough(
    weak_size: int, weak_seed: int, gamma: float, steps: int, lr: float
) -> PoFWalkthrough:
    def compute():
        learn = engine()
        model, d = learn.bundled(str(MOONS))
        return learn.pof_walkthrough(model, d, weak_size, weak_seed, gamma, steps, lr)

    args = dict(weak_size=weak_size, weak_seed=weak_seed, gamma=gamma, steps=steps, lr=lr)
    return stored("pof-walkthrough", PoFWalkthrough, compute, model=file_digest(MOONS), **args)


@st.fragment
def pof_step_by_step() -> None:
    st.header("4. What PoF does, step by step")
    st.markdown(
        "PoF (Sato et al. 2022) post-trains a network that is already trained. It keeps the last "
        "layer w0 fixed and trains only the feature extractor — but under a **perturbed** last "
        "layer, w̃ = w0 − γ·η\\*·g, moved the way *another* batch would move it. Here on the "
        "bundled two-moons MLP, one step at a time: (1) draw a **weak batch** (circled); (2) "
        "compute the last layer's exact gradient **g** of the weak-batch loss L_w; (3) walk "
        "along −g, doubling η while L_w(w0 − η·g) stays at or below L_w(w0) and η is below "
        f"{POF.line_search_max_lr:g} (**η_max**: where it stops); (4) of {POF.num_partitions} "
        "evenly spaced points in (0, η_max], take the one where L_w is lowest (**η\\***): the "
        "step to the weak batch's own minimum along −g, which *lowers* its loss; (5) scale by "
        f"**γ** (PoF draws it from U(0, {POF.gamma_max:g}); here you choose): γ = 2 reaches "
        "about as far past that minimum as w0 sits before it; (6) train the features for a few "
        "steps against the perturbed layer — every later step draws its own weak batch and γ."
    )
    c1, c2, c3 = st.columns(3)
    weak = c1.select_slider(
        "Weak batch size",
        [16, 32, 64, 128, 256, 512],
        value=32,
        key="s4-weak",
        help="The paper uses 256 images of CIFAR's 50,000. ‖δ‖ depends on the draw as much as "
        "on the size (a smaller gradient lets η* grow): try several seeds.",
    )
    seed = c1.number_input("Weak batch (random seed)", 0, 999, 0, key="s4-seed")
    gamma = c2.slider(
        "γ (scale of the perturbation)",
        0.0,
        2.0,
        2.0,
        0.05,
        key="s4-gamma",
        help="2: about the far side of the weak batch's valley along −g, PoF's largest "
        "perturbation",
    )
    steps = c3.slider("Feature-training steps", 0, 100, 20, 5, key="s4-steps")
    lr = c3.select_slider(
        "Learning rate of the features",
        [1.6e-4, 0.001, 0.003, 0.01, 0.03, 0.05],
        value=0.01,
        key="s4-lr",
        format_func=lambda v: f"{v:g}" + (" (the paper's)" if v == 1.6e-4 else ""),
    )
    w = walkthrough(weak, int(seed), gamma, steps, lr)
    info = w.info
    points = stored(  # the training points, without reading the data set (sklearn: slow)
        "moons-points",
        Points,
        lambda: engine().points(engine().bundled(str(MOONS))[1]),
        model=file_digest(MOONS),
    )
    panels = {
        "w0 (solid) and the perturbed layer w̃ (dashed)": MapPanel(
            w.boundary,
            points,
            boundaries={"boundary with w̃": w.boundary_perturbed},
            highlight=("weak batch", w.weak),
        )
    }
    if w.boundary_after is not None:
        panels[f"after {steps} PoF steps (solid) vs before (dashed)"] = MapPanel(
            w.boundary_after, points, boundaries={"boundary before": w.boundary}
        )
    st.plotly_chart(decision_maps(panels), width="stretch", key="s4-boundary")
    st.caption(
        "What to look at: the dashed line is what the last layer would decide after the "
        "perturbation; PoF "
        "teaches the features to do well under such shifted boundaries."
    )
    st.plotly_chart(line_search_figure(w), width="stretch", key="s4-search")
    st.caption(
        "What to look at: the squares double η while the weak-batch loss L_w stays at or below "
        f"L_w(w0) (η_max is where it stops); the dots are the {POF.num_partitions}-point grid; "
        "η* is the lowest of them; γη* is the step actually taken."
    )
    m = st.columns(5)
    m[0].metric("‖g‖", fmt(info.grad_norm))
    m[1].metric("η_max", fmt(info.eta_max))
    m[2].metric("η*", fmt(info.eta_star))
    m[3].metric("‖δ‖ = γ·η*·‖g‖", fmt(info.delta_norm))
    m[4].metric(
        "weak loss at η*",
        fmt(info.weak_loss_star),
        f"{info.weak_loss_star - info.weak_loss:+.3g}",
        delta_color="inverse",
        help=f"L_w(w0) = {fmt(info.weak_loss)}, the weak-batch loss at w0; the arrow: the "
        "change from it",
    )
    b, a = w.before, w.after
    m = st.columns(4)
    m[0].metric(
        "last-layer λ_max (exact)",
        fmt(a.top),
        f"{a.top - b.top:+.3g}",
        delta_color="inverse",
    )
    m[1].metric(
        "last-layer trace (exact)",
        fmt(a.trace),
        f"{a.trace - b.trace:+.3g}",
        delta_color="inverse",
    )
    m[2].metric(
        "training loss (with w0)",
        fmt(a.loss),
        f"{a.loss - b.loss:+.3g}",
        delta_color="inverse",
    )
    m[3].metric("test accuracy", f"{a.test_acc:.1%}", f"{a.test_acc - b.test_acc:+.1%}")
    st.caption(
        f"After {steps} feature-training steps at learning rate {lr:g}, measured on all "
        f"{len(points.x)} training points (the last layer's Hessian is exact: "
        "its closed form), arrows = change from before."
    )
    if lr < 0.001 or steps == 0:
        st.info(
            "At this setting nothing visible changes. The paper's rate, 1.6e-4, is applied for 10 "
            "to 50 epochs "
            "of tens of thousands of images — thousands of steps; a few steps at it move nothing "
            "you could see. "
            "Raise the learning rate (0.01) and the number of steps to see the features move "
            "within a few steps."
        )
    st.markdown(
        "Training the features against a perturbed head is not free: measured with the "
        "unperturbed w0, the "
        "training loss can rise while the features adapt. What PoF aims at is a last layer whose "
        "loss is flat "
        "along the directions in which mini-batches disagree — watch the exact λ_max and trace as "
        "you change γ, "
        "the weak batch and the number of steps."
    )
    refs("sato")
