"""Entry point: `streamlit run app/main.py`."""

import streamlit as st

from app.classroom import banner
from app.learn import chapters
from app.torch_threads import one_torch_thread

one_torch_thread()  # the app's process only; torch itself is imported by the pages that need it

st.set_page_config(page_title="PoF: flat minima, post-trained", layout="wide")
pages = {
    "": [
        st.Page(
            "views/posttrain.py", title="Post-train", icon=":material/play_arrow:", default=True
        ),
        st.Page("views/runs.py", title="Runs", icon=":material/monitoring:"),
        st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
        st.Page("views/inspect.py", title="Inspect", icon=":material/biotech:"),
    ],
    "Learn": chapters.pages(),  # one page per chapter: /learn is the first
}
page = st.navigation(pages, expanded=True)
banner()  # shared with a class: what a student may do here (and a wrong setting, stopped)
page.run()
