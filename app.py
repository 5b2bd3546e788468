"""resnet_viz: `streamlit run app.py`. This entry point only names the pages; each lives in pages/ and is a view over
the `resnet_viz` package."""
import sys
from pathlib import Path

import streamlit as st

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:  # `streamlit run /elsewhere/app.py` still finds the package and ui.py
    sys.path.insert(0, str(ROOT))

import ui  # noqa: E402,F401  (imports every library the pages use, once, before any page runs)

PAGES = [
    st.Page("pages/0_Home.py", title="Home", icon=":material/home:", default=True),
    st.Page("pages/1_Build.py", title="Build", icon=":material/construction:", url_path="Build"),
    st.Page("pages/2_Train.py", title="Train", icon=":material/model_training:", url_path="Train"),
    st.Page("pages/3_Gradient_flow.py", title="Gradient flow", icon=":material/waterfall_chart:", url_path="Gradient_flow"),
    st.Page("pages/4_Grad-CAM.py", title="Grad-CAM", icon=":material/visibility:", url_path="Grad-CAM"),
    st.Page("pages/5_Compare_runs.py", title="Compare runs", icon=":material/compare:", url_path="Compare_runs"),
    st.Page("pages/6_Analyses.py", title="Analyses", icon=":material/science:", url_path="Analyses"),
]
st.navigation(PAGES).run()
