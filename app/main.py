"""pdiff explorer: `streamlit run app/main.py`. The router: sidebar (run picker, background runs)
and the pages in app/views/ (a folder not named pages/, so Streamlit lists only these)."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `streamlit run` puts app/ on the path, not the repository
    sys.path.insert(0, str(ROOT))

from pdiff.core.threads import configure_threads

configure_threads(chosen_by="the app")  # before anything imports torch (see pdiff/core/threads.py)

import streamlit as st

from app import ui

st.set_page_config(page_title="pdiff explorer", page_icon=":material/blur_on:", layout="wide")

PAGES = {
    "Results": [
        st.Page("views/overview.py", title="Overview", icon=":material/account_tree:", default=True),
        st.Page("views/accuracy.py", title="Accuracy", icon=":material/bar_chart:"),
        st.Page("views/similarity.py", title="Similarity", icon=":material/grid_on:"),
        st.Page("views/latent.py", title="Latent space", icon=":material/scatter_plot:"),
        st.Page("views/guided.py", title="Guided", icon=":material/tune:"),
        st.Page("views/training.py", title="Training dynamics", icon=":material/timeline:"),
    ],
    "How it works": [
        st.Page("views/pipeline.py", title="The whole pipeline", icon=":material/schema:"),
        st.Page("views/autoencoder.py", title="Autoencoder", icon=":material/compress:"),
        st.Page("views/denoising.py", title="Denoising", icon=":material/blur_on:"),
        st.Page("views/glossary.py", title="Glossary", icon=":material/menu_book:"),
    ],
    "Runs": [
        st.Page("views/new_run.py", title="New run", icon=":material/add_circle:"),
        st.Page("views/compare.py", title="Compare", icon=":material/compare:"),
    ],
}

page = st.navigation(PAGES)
ui.sidebar()
page.run()
