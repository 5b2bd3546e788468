"""resnet_viz: `streamlit run app.py`. This entry point only builds the navigation from the table of pages
(views/pages.py); each page lives in pages/ and is a view over the `resnet_viz` package.

Streamlit puts this file's folder on sys.path, so `ui`, `views` and `resnet_viz` import from any working directory."""
import streamlit as st

import ui  # noqa: F401  (imports every library the pages use, once, before any page runs)
from views.pages import HOME, PAGES

st.navigation([st.Page(page.path, title=page.title, icon=page.icon, url_path=page.url_path, default=page is HOME)
               for page in PAGES]).run()
