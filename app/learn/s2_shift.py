"""Section 2 of the Learn page, why flatness might matter: training and test loss along one
filter-normalized direction, and what a shifted training landscape would cost each network."""

import streamlit as st

from analysis import learn
from analysis.learn_results import TrainTestSlice
from app.figures.learn import train_test_slices
from app.learn.common import FLAT, PAIR, SHARP, fmt, refs, trained


@st.cache_data(show_spinner=False, max_entries=64)  # a classroom server must not grow without end
def train_test_slice(r: learn.Recipe, seed: int, shift: float) -> TrainTestSlice:
    return learn.train_test_slice(r, 1.0, seed, shift=shift)


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
        "curve is "
        "than the dotted one. The same shift costs the sharp network more."
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
    s_sharp, s_flat = slices.values()
    agree = trained(FLAT).test_loss < trained(SHARP).test_loss
    st.markdown(
        f"Measured on these two networks: the shift of {shift:g} raises the sharp one's loss by "
        f"{fmt(s_sharp.shift_rise)} and the flat one's by {fmt(s_flat.shift_rise)}. Their "
        "real test losses are "
        f"{fmt(trained(SHARP).test_loss)} (sharp) and {fmt(trained(FLAT).test_loss)} (flat)"
        + (
            ": here the flatter network does generalize better. "
            if agree
            else ": here the picture fails — the flatter network generalizes worse. "
        )
        + "Real test landscapes are not exact shifts: along this direction the measured test "
        "minimum sits at "
        f"t = {s_sharp.test_min_t:+.2f} (sharp) and {s_flat.test_min_t:+.2f} (flat) — try "
        "other directions. "
        "Section 5 shows how far flatness goes as a predictor."
    )
    refs("keskar", "li", "sato")
