"""End to end in a real browser: `streamlit run app.py` driven by Playwright on Debian's Chromium.

Opens every page, trains a tiny plain/residual pair from the Train page, waits for the live charts, opens Gradient
flow and Grad-CAM for those runs (uploading a non-image and an image), and asserts that no page shows a Streamlit
exception. A lecture-hall walk then opens every page as it is (1400×900) and in presentation mode at a projector's
1280×720, and asserts what a lecture needs: the first action on Home's first screen, every tab and pill within the
width, and a server log without a traceback or a warning. Screenshots go to test-artifacts/ (and to docs/ when
RESNET_VIZ_SCREENSHOTS_TO_DOCS=1).

Data: tiny CIFAR-10 python batches made here, or the folder named by RESNET_VIZ_E2E_DATA (e.g. the JPEG copy).
With RESNET_VIZ_E2E_RUNS (a copy of a real run store, e.g. the "All four" preset's runs) a tour of those runs comes
first; the screenshots in docs/ are made that way:
    RESNET_VIZ_E2E_DATA=<JPEG copy> RESNET_VIZ_E2E_RUNS=<store> RESNET_VIZ_SCREENSHOTS_TO_DOCS=1 \
        .venv/bin/python -m pytest tests/test_browser.py
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("RESNET_VIZ_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--no-first-run"]

if not Path(CHROMIUM).exists():
    if os.environ.get("RESNET_VIZ_REQUIRE_BROWSER"):
        raise RuntimeError(f"RESNET_VIZ_REQUIRE_BROWSER is set but {CHROMIUM} is missing (apt-get install chromium).")
    pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM} (apt-get install chromium)",
                allow_module_level=True)

playwright_api = pytest.importorskip("playwright.sync_api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained_store, data_dir):
    """`streamlit run app.py` on a store with a tiny trained plain/residual pair (or a copy of RESNET_VIZ_E2E_RUNS);
    its log is streamlit.log beside the store. Yields (url, the store's folder)."""
    base = tmp_path_factory.mktemp("e2e")
    data = os.environ.get("RESNET_VIZ_E2E_DATA") or str(data_dir)
    runs = base / "runs"
    # start from an existing store: real runs for the docs' screenshots, else the tiny pair
    shutil.copytree(os.environ.get("RESNET_VIZ_E2E_RUNS") or trained_store, runs)
    port = free_port()
    env = dict(os.environ, RESNET_VIZ_RUNS=str(runs), RESNET_VIZ_DATA=data, RESNET_VIZ_CACHE=str(base / "cache"),
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log = open(base / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((base / "streamlit.log").read_text())
            time.sleep(0.5)
    else:
        proc.kill()
        raise RuntimeError("streamlit did not start within 60 s")
    yield url, runs
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def page(server):
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": int(os.environ.get("RESNET_VIZ_E2E_HEIGHT", "1400"))})
        pg = context.new_page()
        pg.set_default_timeout(60_000)
        yield pg
        browser.close()


def shoot(pg, name: str, docs: bool = True, whole_page: bool = True) -> None:
    """A screenshot of the whole page (Streamlit scrolls inside the window, so the window is stretched to the page's
    height for it, then put back), or with `whole_page=False` of the window as it is: the first screen."""
    ARTIFACTS.mkdir(exist_ok=True)
    window = pg.viewport_size
    if whole_page:
        tall = pg.evaluate("""() => Math.max(...[...document.querySelectorAll(
            '[data-testid="stMain"], [data-testid="stAppViewContainer"]')].map(e => e.scrollHeight), 0)""")
        pg.set_viewport_size({"width": window["width"], "height": min(max(window["height"], tall), 6000)})
    pg.wait_for_timeout(800)  # let plotly finish drawing
    targets = [ARTIFACTS / f"{name}.png"]
    if docs and os.environ.get("RESNET_VIZ_SCREENSHOTS_TO_DOCS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        targets.append(ROOT / "docs" / f"{name}.png")
    for target in targets:
        pg.screenshot(path=str(target))
    pg.set_viewport_size(window)


def open_page(pg, url: str, path: str) -> None:
    pg.goto(f"{url}/{path}")
    pg.wait_for_selector("h1", timeout=60_000)
    wait_idle(pg)


def wait_for(condition, timeout_s: float) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        if time.time() > deadline:
            raise TimeoutError(f"condition not met within {timeout_s} s")
        time.sleep(0.25)


def wait_idle(pg, timeout_s: float = 60) -> None:
    """Wait until Streamlit has finished running the script: no status widget and no spinner, twice in a row."""
    deadline = time.time() + timeout_s
    pg.wait_for_timeout(500)
    quiet = 0
    while time.time() < deadline and quiet < 2:
        busy = pg.locator('[data-testid="stStatusWidget"]').count() + pg.locator('[data-testid="stSpinner"]').count()
        quiet = 0 if busy else quiet + 1
        pg.wait_for_timeout(250)


def assert_no_exception(pg) -> None:
    errors = pg.locator('[data-testid="stException"]')
    assert errors.count() == 0, errors.first.inner_text()


TOUR = bool(os.environ.get("RESNET_VIZ_E2E_RUNS"))


PRESENT = "?presentation=true"  # presentation mode from the address (ui.PRESENTATION_KEY is bound to the URL)
SCREENS = {"": (1400, 900), PRESENT: (1280, 720)}  # each mode's window: a laptop; a lecture hall's projector


def new_window(pg, mode: str):
    """A page in a browser window of `mode`'s size (SCREENS), a session of its own, from `pg`'s browser."""
    width, height = SCREENS[mode]
    window = pg.context.browser.new_context(viewport={"width": width, "height": height}).new_page()
    window.set_default_timeout(60_000)
    return window


def assert_within(box: dict | None, width: int, height: int | None, what: str) -> None:
    """`box` (a bounding box, in window pixels) lies within the window's width, and its height when given."""
    assert box is not None, f"{what} is not displayed"
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{what} reaches past the window's width: {box}"
    if height is not None:
        assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{what} is not on the first screen: {box}"


def assert_lecture_ready(pg, path: str, mode: str) -> None:
    """What a lecture needs of a page in a window of SCREENS[mode]: every one-click experiment on Home's first
    screen, every experiment pill on Train and every tab of any page within the width."""
    from resnet_viz.lecture.presets import PRESETS
    width, height = SCREENS[mode]
    if path == "":
        buttons = pg.get_by_role("button", name=re.compile("Plan and train")).all()
        assert len(buttons) == len(PRESETS)
        for button in buttons:
            assert_within(button.bounding_box(), width, height, "a Home 'Plan and train' button")
    if path == "Train":
        for preset in PRESETS:
            assert_within(pg.get_by_role("radio", name=preset.title).bounding_box(), width, None,
                          f"the '{preset.title}' pill")
    for tab in pg.get_by_role("tab").all():
        assert_within(tab.bounding_box(), width, None, f"the '{tab.inner_text()}' tab")
    if mode:  # the charts' tick labels, as drawn: at least 16 px, in dark grey (Streamlit's theme: 12 px light grey)
        ticks = pg.evaluate("""() => [...document.querySelectorAll('.xtick text, .ytick text')].map(
            t => [parseFloat(getComputedStyle(t).fontSize), getComputedStyle(t).fill])""")
        assert ticks or path != "Compare_runs", "no chart ticks drawn on Compare runs"
        for size, fill in ticks:
            channels = [int(c) for c in re.findall(r"\d+", fill)[:3]]
            assert size >= 16 and max(channels) <= 0x60, f"{path or 'Home'}: a tick label of {size} px in {fill}"


def assert_clean_log(runs: Path) -> None:
    """The server's log (streamlit.log beside the run store) has no traceback and no warning."""
    log = (runs.parent / "streamlit.log").read_text()
    bad = [line for line in log.splitlines() if re.search(r"Traceback|Warning|WARNING", line)]
    assert not bad, "the server logged:\n" + "\n".join(bad[:20])


def queue_custom_runs(pg, url: str, depth: str, width: str, images: str, batch: str, present: bool = False) -> None:
    """The Train page's custom form: a plain net and its residual twin of one depth."""
    open_page(pg, url, "Train" + (PRESENT if present else ""))
    pg.get_by_text("Custom run", exact=True).click()
    pg.get_by_label("Depths (comma-separated)", exact=True).fill(depth)
    pg.get_by_label("Width multiplier", exact=True).fill(width)
    pg.get_by_label("Epochs", exact=True).fill("1")
    pg.get_by_label("Training images (0 = all 50,000)", exact=True).fill(images)
    pg.get_by_label("Batch size", exact=True).fill(batch)
    pg.get_by_role("button", name="Queue these runs").click()


@pytest.mark.skipif(not TOUR, reason="a tour of a real run store needs RESNET_VIZ_E2E_RUNS")
def test_tour_of_existing_runs(server, page):
    """Every page on real runs (the default picks are twins of one preset), as it is and in presentation mode, then a
    plain net and its twin trained from the Train page and watched live, in both modes."""
    url, runs = server
    for mode, suffix in (("", ""), (PRESENT, "_presentation")):
        pg = new_window(page, mode)  # 1400×900, or a projector's 1280×720
        for path, name, ready in (("", "home", "h1"), ("Build", "build", '[data-testid="stPlotlyChart"]'),
                                  ("Gradient_flow", "gradient_flow", '[data-testid="stPlotlyChart"]'),
                                  ("Grad-CAM", "gradcam", '[data-testid="stImage"]'),
                                  ("Compare_runs", "compare", '[data-testid="stPlotlyChart"]'),
                                  ("Analyses", "analyses", '[data-testid="stPlotlyChart"]')):
            open_page(pg, url, path + mode)
            pg.wait_for_selector(ready)
            wait_idle(pg, 120)
            assert_no_exception(pg)
            assert_lecture_ready(pg, path, mode)
            if mode:
                assert pg.get_by_role("switch", name="Presentation mode").is_checked()
            if path == "":
                shoot(pg, f"home{suffix}_first_screen", whole_page=False)  # what the hall sees on opening
            shoot(pg, name + suffix)
        for tab, buttons, name in (("Lesion", ("Compute: delete each block alone", "Compute: delete k random blocks"),
                                    "analyses_lesion"),
                                   ("Loss landscape", ("Compute the landscape",), "analyses_landscape"),
                                   ("Shattered", (), "analyses_shattered"),
                                   ("Dead ReLUs", (), "analyses_dead_relus")):
            pg.get_by_role("tab", name=tab, exact=False).click()
            wait_idle(pg, 120)
            for button in buttons if not mode else ():  # computed once; presentation mode shows the kept results
                pg.get_by_role("button", name=button).click()
                wait_idle(pg, 300)
            assert_no_exception(pg)
            shoot(pg, name + suffix)
        pg.context.close()
    assert_clean_log(runs)

    pg = page
    queue_custom_runs(pg, url, depth="20", width="1", images="640", batch="64")
    pg.wait_for_selector('[data-testid="stProgress"]', timeout=60_000)
    pg.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=240_000)
    pg.wait_for_timeout(30_000)  # a few evaluations into the first run
    assert_no_exception(pg)
    shoot(pg, "train")
    # the twin trains after the plain net (or has already finished, on a fast machine)
    wait_for(lambda: pg.locator("p", has_text=re.compile(r"resnet-20.* — .*(training|finished)")).count() >= 1, 600)
    pg = new_window(page, PRESENT)
    open_page(pg, url, "Train" + PRESENT)  # the plain net and its twin on one chart, on a projector
    pg.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=120_000)
    pg.wait_for_timeout(20_000)
    assert_no_exception(pg)
    shoot(pg, "train_presentation")
    for _ in range(2):
        stop = pg.get_by_role("button", name="Stop")
        if stop.count():
            stop.first.click()
            wait_idle(pg)
            pg.wait_for_timeout(3000)
    assert_clean_log(runs)


def test_every_page_and_a_training_round_trip(server, page, tmp_path):
    url, runs = server
    pg = page
    open_page(pg, url, "")
    assert_no_exception(pg)
    shoot(pg, "home", docs=not TOUR)

    open_page(pg, url, "Build")
    assert_no_exception(pg)
    pg.wait_for_selector('[data-testid="stPlotlyChart"]')
    shoot(pg, "build", docs=not TOUR)

    # Train: a tiny plain/residual pair through the custom form.
    open_page(pg, url, "Train")
    assert_no_exception(pg)
    pg.get_by_text("Custom run", exact=True).click()
    depths = pg.get_by_label("Depths (comma-separated)", exact=True)
    depths.fill("8")
    pg.get_by_label("Width multiplier", exact=True).fill("0.25")
    pg.get_by_label("Epochs", exact=True).fill("400")  # long enough (a thousand tiny steps) to watch it train
    # all of the tiny test data, or a few hundred images of a real copy of CIFAR-10
    pg.get_by_label("Training images (0 = all 50,000)", exact=True).fill(
        "640" if os.environ.get("RESNET_VIZ_E2E_DATA") else "0")
    pg.get_by_label("Batch size", exact=True).fill("32")
    pg.get_by_role("button", name="Queue these runs").click()
    pg.wait_for_selector('[data-testid="stPlotlyChart"]', timeout=120_000)  # the running net's live charts
    assert pg.locator('[data-testid="stPlotlyChart"]').count() >= 2
    assert_no_exception(pg)
    shoot(pg, "train", docs=not TOUR)
    # finished runs collapse to one line each with what they reached; the live charts go with the last one
    wait_for(lambda: pg.locator("p", has_text=re.compile(r"— .*finished — [\d,]+ steps")).count() >= 2, 300)
    wait_for(lambda: pg.locator('[data-testid="stPlotlyChart"]').count() == 0, 30)
    assert_no_exception(pg)

    open_page(pg, url, "Gradient_flow")
    pg.wait_for_selector('[data-testid="stPlotlyChart"]')
    assert pg.locator('[data-testid="stPlotlyChart"]').count() >= 3  # two heatmaps, profiles, ratio
    assert_no_exception(pg)
    shoot(pg, "gradient_flow", docs=not TOUR)

    open_page(pg, url, "Grad-CAM")
    pg.wait_for_selector('[data-testid="stImage"]')
    assert pg.locator('[data-testid="stImage"]').count() >= 3
    assert_no_exception(pg)
    shoot(pg, "gradcam", docs=not TOUR)
    pg.get_by_text("Upload an image").click()
    wait_idle(pg)
    # a file over the limit is refused in the browser, marked only by a red "!": the limit is said in words
    pg.get_by_text("is refused as it is dropped", exact=False).wait_for()
    not_an_image = tmp_path / "notes.txt"
    not_an_image.write_text("this is not a picture\n")
    pg.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(not_an_image))
    pg.get_by_text("not an image").first.wait_for()
    assert_no_exception(pg)
    from PIL import Image
    picture = tmp_path / "picture.png"
    Image.new("RGBA", (300, 180), (30, 120, 200, 255)).save(picture)
    pg.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(picture))
    pg.get_by_text("your image").first.wait_for()
    pg.get_by_text("its centre 180×180 square was cut out", exact=False).first.wait_for()  # said, not squashed
    assert_no_exception(pg)

    open_page(pg, url, "Compare_runs")
    pg.wait_for_selector('[data-testid="stPlotlyChart"]')
    assert_no_exception(pg)
    shoot(pg, "compare", docs=not TOUR)

    open_page(pg, url, "Analyses")
    pg.wait_for_selector('[data-testid="stPlotlyChart"]')  # the first tab (layer responses) draws by itself
    assert_no_exception(pg)
    shoot(pg, "analyses", docs=not TOUR)
    pg.get_by_role("tab", name="Lesion", exact=False).click()
    wait_idle(pg)
    pg.get_by_role("button", name="Compute: delete each block alone").click()
    wait_idle(pg, 120)
    pg.wait_for_selector('[data-testid="stPlotlyChart"]')
    assert_no_exception(pg)
    shoot(pg, "analyses_lesion", docs=not TOUR)


def test_a_lecture_hall_walk(server, page):
    """Every page of the table of pages, as it is at 1400×900 and in presentation mode at a projector's 1280×720:
    no error box; Home's one-click experiments on the first screen, every pill and tab within the width; each tab
    of the Analyses page opened in presentation mode; and then a server log without a traceback or a warning."""
    from views.pages import HOME, PAGES
    url, runs = server
    for mode in SCREENS:
        pg = new_window(page, mode)
        # Home first, at the root: until a session has opened the root, a fresh server would serve the others from
        # pages/ directly, without app.py's navigation (Streamlit's pages/ folder convention)
        for spec in PAGES:
            path = "" if spec is HOME else spec.url_path
            open_page(pg, url, path + mode)
            wait_idle(pg, 120)
            assert_no_exception(pg)
            assert_lecture_ready(pg, path, mode)
        if mode:  # the Analyses page is open: each of its tabs (the cheap analyses compute as they open)
            for tab in pg.get_by_role("tab").all()[1:]:
                tab.click()
                wait_idle(pg, 120)
                assert_no_exception(pg)
        pg.context.close()
    assert_clean_log(runs)
