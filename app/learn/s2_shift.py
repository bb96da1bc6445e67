"""Section 2 of the Learn page, why flatness might matter: training and test loss along one
filter-normalized direction, and what a shifted training landscape would cost each network."""

import streamlit as st

from analysis.learn_results import Recipe, TrainTestSlice
from app.figures.learn import train_test_slices
from app.learn.common import PAIR, engine, fmt, refs, stored, trained


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def train_test_slice(r: Recipe, seed: int, shift: float) -> TrainTestSlice:
    return stored(
        "train-test-slice",
        TrainTestSlice,
        lambda: engine().train_test_slice(r, 1.0, seed, shift=shift),
        r=r,
        seed=seed,
        shift=shift,
    )


@st.fragment
def why_it_matters() -> None:
    st.header("2. Why it might matter")
    st.markdown(
        "The test set is a different sample from the training set, so the test loss is a slightly "
        "different "
        "function of the weights. A common picture (Keskar et al. 2017; the first figure of the "
        "PoF paper) treats "
        "the test landscape as the training landscape **shifted**: at the training minimum the "
        "test loss is then "
        "higher by about ½·sᵀHs for a shift s — little for a flat minimum, a lot for a sharp one. "
        "Below: the "
        "training loss of both networks along one random direction, scaled filter by filter to "
        "the weights "
        "(Li et al. 2018) so that distances mean the same for both; the training curve moved by "
        "the shift you "
        "choose (dashed); and the test loss, measured."
    )
    c1, c2 = st.columns(2)
    shift = c1.slider(
        "Shift of the landscape (along the direction)",
        0.0,
        1.0,
        0.3,
        0.05,
        key="s2-shift",
        help="in the direction's units: each filter moves by this fraction of its own norm "
        "(0.1: by a tenth). Real train/test shifts are small; large values exaggerate them",
    )
    seed = c2.number_input("Direction (random seed)", 0, 999, 0, key="s2-seed")
    slices = {label: train_test_slice(r, int(seed), shift) for label, r in PAIR.items()}
    st.plotly_chart(train_test_slices(slices, shift), width="stretch", key="s2-fig")
    st.caption(
        "What to look at: at t = 0 (the trained weights), how much higher the dashed, shifted "
        "curve is than the dotted one: that is what the shift costs each network."
    )
    cols = st.columns(len(PAIR))
    for col, (label, s) in zip(cols, slices.items(), strict=True):
        col.markdown(f"**{label}**")
        a, b, c = col.columns(3)
        a.metric(
            "rise from the shift",
            fmt(s.shift_rise),
            help="training loss at −shift along the direction minus training loss at 0",
        )
        b.metric("test loss (measured)", fmt(s.test_at_w))
        c.metric("test minimum at t", f"{s.test_min_t:+.2f}")
    st.markdown(measured(slices, {label: trained(r) for label, r in PAIR.items()}, shift))
    refs("keskar", "li", "sato")


def measured(slices: dict, summaries: dict, shift: float) -> str:
    """What was measured on the pair, in words: the rise from the shift, the test loss and the
    test accuracy of each, and which network each of them favours (nothing assumed)."""
    (a, sa), (b, sb) = slices.items()
    ta, tb = summaries[a], summaries[b]
    lower_rise = a if sa.shift_rise < sb.shift_rise else b
    lower_test = a if ta.test_loss < tb.test_loss else b
    text = (
        f"Measured on these two networks: the shift of {shift:g} raises the training loss of the "
        f"{a} network by {fmt(sa.shift_rise)} and of the {b} one by {fmt(sb.shift_rise)}. Their "
        f"test losses are {fmt(ta.test_loss)} and {fmt(tb.test_loss)}, their test accuracies "
        f"{ta.test_acc:.1%} and {tb.test_acc:.1%}. "
    )
    if f"{ta.test_acc:.1%}" == f"{tb.test_acc:.1%}":
        text += (
            "Both classify the test points equally well; only the test loss — how confident "
            f"the answers are — differs, and it is lower for the {lower_test} network"
        )
    else:
        better = a if ta.test_acc > tb.test_acc else b
        text += (
            f"The {better} network is the more accurate; the {lower_test} one has the lower "
            "test loss"
        )
    text += (
        f", {'the same' if lower_test == lower_rise else 'not the'} network whose training loss "
        "this shift raises less. "
    )
    return text + (
        "Real test landscapes are not exact shifts: along this direction the measured test "
        f"minimum sits at t = {sa.test_min_t:+.2f} ({a}) and {sb.test_min_t:+.2f} ({b}) — try "
        "other directions. Chapter 1 showed that adaptive sharpness ranks this pair differently "
        "from λ_max; chapter 5 shows how far flatness goes as a predictor."
    )
