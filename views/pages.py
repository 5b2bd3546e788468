"""The app's table of pages: app.py builds its navigation from it, the Home page lists it, the tests walk it.

Adding a page is one row here and one file in pages/. This module imports nothing, so it can be read without
Streamlit (or torch) being loaded.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    path: str  # the page's script, relative to the app's root (app.py's folder)
    title: str  # in the navigation menu and the browser tab
    icon: str  # a Streamlit material icon, ":material/<name>:"
    url_path: str  # the page's URL below the app's root; the first page is also served at the root itself
    blurb: str  # one line for the Home page's "Where to go next": what the page shows


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/0_Home.py", "Home", ":material/home:", "Home",
             "residual learning in one page, and a one-click experiment"),
    PageSpec("pages/1_Build.py", "Build", ":material/construction:", "Build",
             "pick a depth, see a ResNet and its plain twin side by side"),
    PageSpec("pages/2_Train.py", "Train", ":material/model_training:", "Train",
             "train a plain net and its ResNet twin"),
    PageSpec("pages/3_Gradient_flow.py", "Gradient flow", ":material/waterfall_chart:", "Gradient_flow",
             "per-layer gradient norms, plain vs residual"),
    PageSpec("pages/4_Grad-CAM.py", "Grad-CAM", ":material/visibility:", "Grad-CAM",
             "where each trained net looks"),
    PageSpec("pages/5_Compare_runs.py", "Compare runs", ":material/compare:", "Compare_runs",
             "the paper's Fig. 6 from your own runs"),
    PageSpec("pages/6_Analyses.py", "Analyses", ":material/science:", "Analyses",
             "six measurements of why residual nets train better"),
)
HOME = PAGES[0]  # the default page


def link_label(page: PageSpec) -> str:
    """How the Home page names another page in its list of links (Markdown)."""
    return f"**{page.title}** — {page.blurb}"
