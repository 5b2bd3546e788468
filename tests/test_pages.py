"""The table of pages (views/pages.py) and the app as a whole: every file in pages/ has one row, app.py opens every
page through its navigation, and the Home page links to all the others. (Each page's own behaviour: the
test_app_*.py and test_analysis_page.py modules.)"""
import re
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from resnet_viz.execution.jobs import JobQueue
from views.pages import HOME, PAGES, link_label

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 90


def test_every_page_file_has_one_row():
    files = sorted(str(f.relative_to(ROOT)) for f in (ROOT / "pages").glob("*.py"))
    assert sorted(page.path for page in PAGES) == files
    assert HOME is PAGES[0] and HOME.path == "pages/0_Home.py"


@pytest.mark.parametrize("field", ["title", "url_path"])
def test_titles_and_urls_are_unique(field):
    values = [getattr(page, field) for page in PAGES]
    assert len(set(values)) == len(values), values


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.url_path)
def test_rows_are_complete(page):
    assert re.fullmatch(r":material/[a-z_]+:", page.icon), page.icon
    assert re.fullmatch(r"[A-Za-z0-9_-]+", page.url_path), page.url_path  # st.Page refuses "/" and empty paths
    assert page.title and page.blurb and not page.blurb.endswith(".")  # the blurb follows a dash in a link label


def test_the_table_imports_without_streamlit_or_torch():
    code = "import sys, views.pages; assert not {'streamlit', 'torch'} & set(sys.modules), sorted(sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


@pytest.fixture(autouse=True)
def empty_job_list(monkeypatch):
    monkeypatch.setattr("resnet_viz.execution.jobs._QUEUE", JobQueue())  # the server's job list, empty: not other tests' jobs


def ok(at: AppTest) -> AppTest:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]
    return at


def open_page(at: AppTest, page) -> AppTest:
    ok(at.run())  # app.py registers the pages with st.navigation; switch_page needs that registry
    if page is not HOME:
        ok(at.switch_page(page.path).run())
    return at


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.url_path)
def test_every_page_opens_through_the_app_with_an_empty_store(page, tmp_path, data_dir, app_test):
    at = open_page(app_test("app.py", tmp_path / "no-runs", data_dir, timeout=TIMEOUT), page)
    assert at.title and (page is HOME or at.title[0].value.startswith(page.title.split()[0]))


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.url_path)
def test_every_page_opens_through_the_app_with_trained_runs(page, trained_store, data_dir, app_test):
    at = app_test("app.py", trained_store, data_dir, timeout=TIMEOUT)
    at.session_state["keep_an_images"] = 16  # the Analyses page: a quick measurement is enough here
    at = open_page(at, page)
    assert at.title and (page is HOME or at.title[0].value.startswith(page.title.split()[0]))


def test_home_links_every_other_page_from_the_table(tmp_path, data_dir, app_test):
    at = ok(app_test("app.py", tmp_path / "no-runs", data_dir, timeout=TIMEOUT).run())
    links = [(link.proto.page, link.value, link.proto.icon) for link in at.page_link]
    assert links == [(page.url_path, link_label(page), page.icon) for page in PAGES if page is not HOME]
