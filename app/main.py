"""Entry point: `streamlit run app/main.py`."""

import streamlit as st
import torch

# The app's own work is light (metadata, probes, the Learn page's tiny networks). With torch's default
# of one thread per core it fought a running job for the 2 cores and took 6-25x longer; one thread
# costs it nothing measurable when idle (benchmarks/RESULTS.md, Learn page). Jobs are separate
# processes and keep all their threads.
torch.set_num_threads(1)

st.set_page_config(page_title="PoF: flat minima, post-trained", layout="wide")
pages = [
    st.Page("views/posttrain.py", title="Post-train", icon=":material/play_arrow:", default=True),
    st.Page("views/runs.py", title="Runs", icon=":material/monitoring:"),
    st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    st.Page("views/inspect.py", title="Inspect", icon=":material/biotech:"),
    st.Page("views/learn.py", title="Learn", icon=":material/school:"),
]
st.navigation(pages).run()
