"""View helpers for the pages: the table of pages (pages.py, plain data), Streamlit-cached models and results, and
the Analyses page's sections. The latter use st.cache_*, so they live here and not in `resnet_viz`, which never
imports streamlit."""
