"""The app as a lecturer runs it: a real server, a real Chromium on the same machine, plan shown vs run got.

    python -m benchmarks.live_app [--minutes 5] [--seed 0] [--data DIR] [--fresh-speeds] [--watch-seconds 40]
                                  [--skip-watch] [--only-watch] [--only-degradation]

Starts `streamlit run app.py` on a fresh run store, drives Chromium (Debian's /usr/bin/chromium) through Home →
Degradation → Start, waits, then The fix → Start (which should match Degradation's steps), and prints for each:
the steps and estimate the Train page showed, the steps each run trained, and the wall time from the click to the
last run's end (target: within ±10% of the estimate; every run's steps equal to the plan; all four nets equal).
Then the cost of watching: a plain-56 run queued from the Custom run form, its steps per second (from status.json)
with 0, 1 and 3 tabs on the Train page (targets: one tab costs at most 10%, three at most 20%).
Data: --data, else the JPEG copy of CIFAR-10 in ../shared/data (unpacked once). --fresh-speeds moves this machine's
step-time cache aside first, so the Train page measures, as on a new laptop (it is put back afterwards).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.live_budget import data_folder

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def start_server(runs: Path, data: str, port: int) -> subprocess.Popen:
    env = dict(os.environ, RESNET_VIZ_RUNS=str(runs), RESNET_VIZ_DATA=data, STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    log = open(runs.parent / "streamlit.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.headless",
                             "true", "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none"], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2)
            return proc
        except OSError:
            time.sleep(0.5)
    proc.kill()
    sys.exit("streamlit did not start")


def statuses(runs: Path) -> list[dict]:
    out = []
    for folder in sorted(runs.glob("*/")):
        try:
            status = json.loads((folder / "status.json").read_text())
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError):
            continue
        out.append(dict(status, id=folder.name, name=config.get("name") or "", config=config))
    return out


def wait_for_runs(runs: Path, suffix: str, count: int, timeout: float) -> list[dict]:
    deadline = time.time() + timeout
    while time.time() < deadline:
        done = [s for s in statuses(runs) if s["name"].endswith(suffix) and s.get("status") in
                ("finished", "stopped", "diverged", "failed", "interrupted")]
        if len(done) >= count:
            return done
        time.sleep(1.0)
    sys.exit(f"runs of {suffix} did not finish within {timeout:.0f} s")


def field(pg, label: str):
    """A text or number input by its label (get_by_label also finds the label's help button)."""
    return pg.locator(f'input[aria-label="{label}"]').first


def read_plan(pg) -> tuple[list[int], float, str]:
    """The steps per net and the estimate the Train page shows."""
    pg.wait_for_selector("text=Estimated total", timeout=600_000)
    text = pg.locator("p", has_text="Estimated total").first.inner_text()
    m = re.search(r"Estimated total: (?:(\d+) min )?(\d+) s", text)
    seconds = 60 * int(m.group(1) or 0) + int(m.group(2))
    steps = [int(s) for s in re.findall(r"runs of ([\d,]+) steps", text.replace(",", ""))]
    return steps, seconds, text


def set_seed(pg, seed: int) -> None:
    """The lecturer types another seed: the plan is made again for it (and says "seed N")."""
    box = field(pg, "Seed")
    if int(float(box.input_value() or 0)) == seed:
        return
    box.fill(str(seed))
    box.press("Enter")
    if seed:
        pg.wait_for_function("(t) => [...document.querySelectorAll('p')].some(p => p.innerText.includes('Estimated "
                             "total') && p.innerText.includes(t))", arg=f"seed {seed}", timeout=600_000)


def click_start(pg, key: str, runs: Path) -> None:
    """Start, and make sure it queued: a click that lands while a refresh replaces the button is lost (it was,
    once); clicked again only when neither the queue's cards nor the run store know the runs."""
    for _ in range(3):
        pg.get_by_role("button", name="Start").click()
        try:
            pg.wait_for_function("(k) => document.body.innerText.includes(' · ' + k + ' (this tab)')", arg=key,
                                 timeout=20_000)
            return
        except Exception:
            if any(s["name"].endswith(f"· {key}") for s in statuses(runs)):
                return
    sys.exit(f"Start did not queue the {key} runs")


def run_preset(pg, url: str, runs: Path, key: str, minutes: float, from_home: bool, seed: int = 0) -> dict:
    if from_home:
        pg.goto(url)
        pg.get_by_role("button", name="Plan and train").first.wait_for(timeout=60_000)
        buttons = pg.get_by_role("button", name="Plan and train")
        index = {"degradation": 0, "fix": 1}[key]
        t_click = time.time()
        buttons.nth(index).click()
    else:
        t_click = time.time()
        pg.get_by_text("The fix: ResNet-20 vs ResNet-56", exact=True).first.click()  # the experiment's pill
        pg.get_by_text("The same depths with shortcut connections").first.wait_for(timeout=600_000)
        try:  # a plan that matches Degradation's runs says so; give the rerun time to draw it
            pg.wait_for_function("() => [...document.querySelectorAll('p')].some(p => "
                                 "p.innerText.includes('Estimated total') && p.innerText.includes('matching'))",
                                 timeout=30_000)
        except Exception:
            pass
    steps, estimate, text = read_plan(pg)
    shown_after = time.time() - t_click
    set_seed(pg, seed)
    steps, estimate, text = read_plan(pg)
    box = field(pg, "Minutes for the whole experiment")
    if minutes and from_home and float(box.input_value()) != minutes:  # the lecturer types the minutes in
        box.fill(str(minutes))
        box.press("Enter")
        pg.wait_for_function("(t) => !document.body.innerText.includes(t)", arg=text.split("—")[0], timeout=600_000)
        steps, estimate, text = read_plan(pg)
    print(f"  {key}: {text}", flush=True)
    t0 = time.time()
    click_start(pg, key, runs)
    done = wait_for_runs(runs, f"· {key}", 2, timeout=max(900, 4 * estimate))
    wall = max(s["updated"] for s in done) - t0
    return {"preset": key, "plan_steps": steps[0] if steps else None, "estimate": estimate, "wall": wall,
            "plan_shown_after": shown_after, "matched": "matching" in text,
            "runs": [(s["name"].split(" · ")[0], s.get("step"), s.get("threads"), s.get("precision"),
                      s["id"]) for s in done]}


def final_errors(runs: Path) -> dict[str, float]:
    from resnet_viz.storage.store import RunStore
    return {r.name.split(" · ")[0]: 100 * float(r.metrics["train_error"][-1]) for r in RunStore(runs).list()
            if " · " in r.name}


def cpu_by_part(server_pid: int) -> dict[int, tuple[str, int]]:
    """{pid: (part, busy jiffies so far)}, the parts being the server (without its training children), the training
    children, the browsers and everything else: where the cores went while a run was watched."""
    from resnet_viz.training.threads import _process_table, demo_pids
    table = _process_table() or {}
    browsers = demo_pids(table, -1)
    training = {pid for pid, (comm, ppid, _) in table.items() if ppid == server_pid}
    server = demo_pids({p: v for p, v in table.items() if p not in training}, server_pid) - browsers
    return {pid: ("training" if pid in training else "server" if pid in server else
                  "browsers" if pid in browsers else "other", jiffies) for pid, (_, _, jiffies) in table.items()}


def cores_used(before: dict[int, tuple[str, int]], after: dict[int, tuple[str, int]], seconds: float) -> str:
    """Of the processes alive at both ends (a run that ends in the window would count negative otherwise)."""
    parts = {"server": 0, "training": 0, "browsers": 0, "other": 0}
    for pid, (part, jiffies) in after.items():
        if pid in before:
            parts[part] += jiffies - before[pid][1]
    hz = os.sysconf("SC_CLK_TCK")
    return ", ".join(f"{k} {v / hz / seconds:.2f}" for k, v in parts.items())


def steps_per_second(runs: Path, run_id: str, seconds: float, server_pid: int | None = None) -> float:
    """From the run's own saves (status.json: step and time, every few seconds). With server_pid, also prints how
    many cores the server, the training, the browsers and the rest used meanwhile."""
    path = runs / run_id / "status.json"
    samples = []
    before, t_before = (cpu_by_part(server_pid), time.time()) if server_pid else (None, 0.0)
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            s = json.loads(path.read_text())
            if not samples or samples[-1][0] != s.get("step"):
                samples.append((s.get("step"), s.get("updated")))
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    if before is not None:
        print(f"    cores used: {cores_used(before, cpu_by_part(server_pid), time.time() - t_before)}", flush=True)
    if len(samples) < 3:
        return float("nan")
    (s0, t0), (s1, t1) = samples[1], samples[-1]  # the first sample's save may predate the window
    return (s1 - s0) / max(1e-9, t1 - t0)


WATCHING = (0, 1, 3, 0, 1, 3, 0)


def watching_cost(browser, url: str, runs: Path, watch_seconds: float, server_pid: int) -> list[tuple[int, float]]:
    """Plain-56 (and its twin) from the Custom run form; plain-56's pace with 0, 1 and 3 tabs watching the Train
    page, in alternating windows (an evaluation falling into one window or not moves a 40 s pace by several percent,
    so each count is measured twice and the none three times); then both are stopped."""
    pg = browser.new_page(viewport={"width": 1400, "height": 900})
    pg.goto(f"{url}/Train")
    pg.get_by_text("Custom run", exact=True).click()
    field(pg, "Depths (comma-separated)").fill("56")
    field(pg, "Depths (comma-separated)").press("Tab")
    field(pg, "Epochs").fill("6")  # plain-56 trains ~9 minutes: every window falls inside it
    pg.get_by_role("button", name="Queue these runs").click()
    confirm = pg.get_by_role("button", name=re.compile("Queue anyway"))
    try:
        confirm.wait_for(timeout=20_000)
        confirm.click()
    except Exception:
        pass
    deadline = time.time() + 120
    run_id = None
    while time.time() < deadline and run_id is None:
        running = [s for s in statuses(runs) if s.get("status") == "running" and "plain-56" in s["id"]]
        run_id = running[0]["id"] if running else None
        time.sleep(1)
    if run_id is None:
        sys.exit("the watched run did not start")
    time.sleep(15)  # past its first evaluation and warm-up
    pg.goto("about:blank")
    results = []
    tabs = []
    for watching in WATCHING:
        while len(tabs) < watching:
            tab = browser.new_page(viewport={"width": 1400, "height": 900})
            tab.goto(f"{url}/Train")
            tabs.append(tab)
        while len(tabs) > watching:
            tabs.pop().close()
        time.sleep(3)
        print(f"  {watching} tabs watching:", flush=True)
        results.append((watching, steps_per_second(runs, run_id, watch_seconds, server_pid)))
    for tab in tabs:
        tab.close()
    pg.goto(f"{url}/Train")
    for _ in range(2):
        pg.get_by_role("button", name="Stop").first.click()
        time.sleep(2)
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=None, help="the Train page's budget (default: its default)")
    p.add_argument("--data", default=None)
    p.add_argument("--fresh-speeds", action="store_true")
    p.add_argument("--watch-seconds", type=float, default=40.0)
    p.add_argument("--skip-watch", action="store_true")
    p.add_argument("--only-watch", action="store_true", help="just the cost of watching (no presets)")
    p.add_argument("--seed", type=int, default=0, help="typed into the Train page's Seed field")
    p.add_argument("--only-degradation", action="store_true", help="Degradation alone (what a budget reaches)")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args()
    from playwright.sync_api import sync_playwright

    from resnet_viz.training.budget import speed_cache_file
    from resnet_viz.datasets.cifar10 import load_cifar10
    data = data_folder(args.data)
    load_cifar10(data, download=False, progress=False)  # decoded and cached before any clock starts
    cache = speed_cache_file()
    aside = cache.with_suffix(".aside")
    if args.fresh_speeds and cache.exists():
        cache.rename(aside)
    work = Path(tempfile.mkdtemp(prefix="live_app-"))
    runs = work / "runs"
    server = start_server(runs, data, args.port)
    url = f"http://127.0.0.1:{args.port}"
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} · {platform.processor() or platform.machine()} · "
          f"{os.cpu_count()} cores · Chromium on the same machine · data {data}", flush=True)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
            pg = browser.new_page(viewport={"width": 1400, "height": 900})
            pg.set_default_timeout(120_000)
            results = [] if args.only_watch else [run_preset(pg, url, runs, "degradation", args.minutes, True,
                                                             args.seed)]
            if not (args.only_watch or args.only_degradation):
                results.append(run_preset(pg, url, runs, "fix", args.minutes, False, args.seed))
            errors = final_errors(runs)
            if results:
                print("| preset | plan shown after | steps shown | steps run | threads | estimate | real | error |")
                print("|---|---:|---:|---|---|---:|---:|---:|")
            for r in results:
                print(f"| {r['preset']}{' (matched)' if r['matched'] else ''} | {r['plan_shown_after']:.1f} s | "
                      f"{r['plan_steps']} | {', '.join(f'{n} {s}' for n, s, *_ in r['runs'])} | "
                      f"{', '.join(str(t) for _, _, t, *_ in r['runs'])} | {r['estimate']:.0f} s | {r['wall']:.0f} s "
                      f"| {100 * (r['wall'] - r['estimate']) / r['estimate']:+.1f}% |", flush=True)
            if errors:
                print("final training error (eval mode, 500 fixed training images): "
                      + ", ".join(f"{k} {v:.1f}%" for k, v in sorted(errors.items())), flush=True)
            if not args.skip_watch:
                pace = watching_cost(browser, url, runs, args.watch_seconds, server.pid)
                mean = {n: sum(v for t, v in pace if t == n) / sum(1 for t, _ in pace if t == n)
                        for n in sorted(set(WATCHING))}
                print("| tabs watching | plain-56 steps/s (each window) | mean | vs none |\n|---:|---|---:|---:|")
                for n, m in mean.items():
                    each = ", ".join(f"{v:.2f}" for t, v in pace if t == n)
                    print(f"| {n} | {each} | {m:.2f} | {100 * (m / mean[0] - 1):+.0f}% |", flush=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
        if args.fresh_speeds and aside.exists():
            aside.replace(cache)


if __name__ == "__main__":
    main()
