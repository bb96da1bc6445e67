"""Entry point: `streamlit run app/main.py`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # so `pof` and `app` import as packages

import streamlit as st  # noqa: E402

st.set_page_config(page_title="PoF: flat minima, post-trained", layout="wide")
pages = [st.Page("views/posttrain.py", title="Post-train", icon=":material/play_arrow:", default=True),
         st.Page("views/runs.py", title="Runs", icon=":material/monitoring:"),
         st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
         st.Page("views/inspect.py", title="Inspect", icon=":material/biotech:"),
         st.Page("views/learn.py", title="Learn", icon=":material/school:")]
st.navigation(pages).run()
