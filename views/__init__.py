"""View helpers for the pages: Streamlit-cached models and results, and the Analyses page's sections. They use
st.cache_*, so they live here and not in `resnet_viz`, which never imports streamlit."""
