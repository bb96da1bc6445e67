"""Learn: flat minima taught by live experiments. Every section is a short explanation and one
experiment on models small enough to train in a fraction of a second (analysis.learn); each is an
st.fragment, so moving a slider reruns that section alone, and results are cached so that going
back and forth is instant. Every number shown is computed here, never typed in.

The sections live in app.learn, one module each; this page states the topic and runs them in
order."""

import streamlit as st

from app.learn import (
    common,
    s1_flatness,
    s2_shift,
    s3_digits,
    s3_recipes,
    s4_pof,
    s5_caveats,
    s6_stability,
)

st.title("Learn: what a flat minimum is")
st.markdown(
    "A minimum of the training loss is **flat** when the loss stays low as the weights move away "
    "from it, and **sharp** when it climbs quickly. The idea that flat minima generalize better is "
    "old (Hochreiter & Schmidhuber 1997) and still debated. This page shows it with experiments "
    "small enough to run while you watch: tiny networks on 2-D point sets, trained and measured by "
    "the same engine as the rest of the app. Every number is computed, not typed in: the page's "
    "networks and measurements come with the app, checked before they are used, so a first visit "
    "trains nothing; a setting never computed before (another recipe, another γ) is trained and "
    "measured while you wait — about a second on an idle 2-core machine, several times that on a "
    "busy one."
)
st.caption("The figures: drag to zoom, double-click to reset; hover for values.")

s1_flatness.what_flatness_is()
s2_shift.why_it_matters()
s3_recipes.what_makes_them()
s3_digits.digits_pair_section()
s4_pof.pof_step_by_step()
s5_caveats.caveats()
s6_stability.edge_of_stability_section()
common.warm_up()  # the first new slider value then finds its imports done
