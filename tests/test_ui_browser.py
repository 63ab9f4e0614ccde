"""`artifacts ui` in a real headless Chromium (Playwright driving Debian's chromium), served by uvicorn
on 127.0.0.1: pages load with no console error, charts draw, the lineage graph has its nodes and links,
no request leaves the app, and a report file opened from disk draws the same without any request.

Set ``ARTIFACTS_UI_SCREENSHOTS=docs`` to refresh the README's screenshots from this run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ui_demo import XSS_CONFIG, Demo, build

from artifacts.cli_ui import bind
from artifacts.ui import create_app, write_report

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_HINT = "no Chromium found: install it with `apt-get install -y chromium` (it lands at /usr/bin/chromium) or set $CHROMIUM"


def find_chromium() -> str:
    """Debian's chromium, installed here on first use when we are root with apt-get; else fail."""
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and os.path.exists(candidate):
            return candidate
    if shutil.which("apt-get") and hasattr(os, "geteuid") and os.geteuid() == 0:
        print(
            "\ninstalling chromium for the browser tests: apt-get install -y chromium",
            file=sys.stderr,
        )
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update"], env=env, check=False, capture_output=True)
        done = subprocess.run(
            ["apt-get", "install", "-y", "chromium"],
            env=env,
            check=False,
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 and os.path.exists("/usr/bin/chromium"):
            return "/usr/bin/chromium"
    pytest.fail(INSTALL_HINT, pytrace=False)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("uicache")))
        mp.setenv("ARTIFACTS_USER", "alice")
        d = build(str(tmp_path_factory.mktemp("uistore") / "store"), steps=60)
        yield d
        d.store.close()


@pytest.fixture(scope="module")
def server(demo: Demo) -> Iterator[str]:
    """The app under uvicorn on 127.0.0.1, an OS-chosen port, in a thread."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    app = create_app(demo.store, allowed_hosts=["127.0.0.1", "localhost"], sync_every=0)
    srv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


class Watch:
    """Every request and console error of a browser context."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []

    def attach(self, page: Any) -> None:
        page.on("request", lambda r: self.requests.append(r.url))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        page.on("pageerror", lambda e: self.errors.append(str(e)))


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1360, "height": 900},
        )
        yield ctx
        ctx.close()


@pytest.fixture
def page(browser: Any) -> Iterator[tuple[Any, Watch]]:
    watch = Watch()
    pg = browser.new_page()
    watch.attach(pg)
    yield pg, watch
    pg.close()


def shots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("ARTIFACTS_UI_SCREENSHOTS") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    return out


def charts_drawn(pg: Any) -> list[dict[str, Any]]:
    """Per chart: points handed to uPlot and coloured pixels on its canvas (blank canvases have 0)."""
    return pg.evaluate(
        """() => Array.from(document.querySelectorAll('.chart')).map(el => {
            const c = el.querySelector('canvas');
            let inked = 0;
            if (c) {
                const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
                for (let i = 3; i < d.length; i += 4) if (d[i] > 0) inked++;
            }
            return {metric: el.dataset.metric, points: Number(el.dataset.points || 0), inked};
        })"""
    )


def only_local(watch: Watch, base: str) -> None:
    assert watch.requests, "no request seen"
    outside = [u for u in watch.requests if not u.startswith(base + "/")]
    assert not outside, outside
    assert not watch.errors, watch.errors


def test_runs_page_sort_group_open_a_run_and_its_charts(
    server: str, demo: Demo, page: tuple[Any, Watch], tmp_path: Path
) -> None:
    pg, watch = page
    out = shots_dir(tmp_path)
    pg.goto(f"{server}/runs?project=gru-sentiment")
    assert pg.locator("tr[data-run]").count() == 5
    pg.fill("input[name=group]", "job_type")
    pg.fill("input[name=metric]", "summary.val_acc")
    pg.locator("form.filters button").click()
    pg.wait_for_selector("table.groups")
    groups = pg.locator("table.groups tr[data-group]").all_inner_texts()
    assert any(g.startswith("train\t2") for g in groups), groups
    pg.screenshot(path=str(out / "ui-runs.png"), full_page=True)
    pg.locator("th a[data-sort='config.lr']").click()
    pg.wait_for_url(re.compile(r"sort=config\.lr"))
    first = pg.locator("tr[data-run]").first.get_attribute("data-run")
    assert first in (demo.runs["train0"], demo.runs["train1"])  # the runs with an lr, largest first
    assert first == demo.runs["train1"]
    with pg.expect_navigation() as nav:
        pg.fill("input[name=q]", "summary.val_acc > 0.5")
        pg.press("input[name=q]", "Enter")
    assert nav.value.status == 200
    ids = set(pg.locator("tr[data-run]").evaluate_all("els => els.map(e => e.dataset.run)"))
    assert ids == {demo.runs["train0"], demo.runs["train1"]}
    assert pg.locator("input[name=q]").input_value() == "summary.val_acc > 0.5"
    pg.goto(f"{server}/runs?project=gru-sentiment&sort=started_at")
    pg.locator(f"tr[data-run='{demo.runs['train0']}'] a.run-link").click()
    pg.wait_for_selector(".chart[data-drawn='1']")
    drawn = charts_drawn(pg)
    assert [c["metric"] for c in drawn] == ["train_loss", "val_acc", "val_loss"]
    assert all(c["points"] == 60 and c["inked"] > 500 for c in drawn), drawn
    assert pg.locator("svg.lineage g.node").count() >= 5
    pg.screenshot(path=str(out / "ui-run.png"), full_page=True)
    only_local(watch, server)


def test_hostile_content_stays_text_in_the_browser(
    server: str, demo: Demo, page: tuple[Any, Watch]
) -> None:
    pg, watch = page
    dialogs: list[str] = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(f"{server}/runs/{demo.runs['prepare']}")
    assert XSS_CONFIG in pg.locator("table.kv").first.inner_text()
    pg.goto(f"{server}/artifacts/reviews/v0")
    names = pg.locator("tr[data-file] a.preview").all_inner_texts()
    assert any("onerror" in n for n in names)
    assert pg.locator("img").count() == 0
    pg.locator("tr[data-file] a.preview", has_text="onerror").click()
    pg.wait_for_selector("pre.preview")
    assert "<script>alert(2)</script>" in pg.locator("pre.preview").inner_text()
    pg.goto(f"{server}/artifacts/reviews/v0/files/README.txt")
    assert not dialogs
    only_local(watch, server)


def test_lineage_graph_and_every_page_load_cleanly(
    server: str, demo: Demo, page: tuple[Any, Watch]
) -> None:
    pg, watch = page
    pg.goto(f"{server}/lineage?ref=run/{demo.runs['evaluate']}&depth=10")
    nodes = set(
        pg.locator("svg.lineage g.node").evaluate_all("els => els.map(e => e.dataset.node)")
    )
    best = demo.store.artifact("gru:best").ref
    assert {
        "reviews:v0",
        "vocab:v0",
        best,
        f"run/{demo.runs['evaluate']}",
        f"run/{demo.runs['train0']}",
    } <= nodes
    edges = pg.locator("svg.lineage path.edge").evaluate_all(
        "els => els.map(e => [e.dataset.source, e.dataset.target])"
    )
    assert ["vocab:v0", f"run/{demo.runs['train0']}"] in edges and [
        best,
        f"run/{demo.runs['evaluate']}",
    ] in edges
    boxes = pg.locator("svg.lineage g.node rect").evaluate_all(
        "els => els.map(e => e.getBBox().width)"
    )
    assert all(w > 100 for w in boxes)
    pg.locator(f"svg.lineage g[data-node='{best}'] a").click()
    pg.wait_for_url(re.compile(r"/artifacts/gru/v\d+$"))
    assert pg.locator("table.tensors tr[data-tensor]").count() == 4
    r = demo.runs
    for url in (
        "/artifacts",
        "/artifacts/gru",
        "/usage",
        f"/compare?runs={r['train0']}&runs={r['train1']}",
        f"/runs/{r['live']}",
        "/artifacts/gru/v1/diff?against=v0",
    ):
        pg.goto(server + url)
        assert pg.locator("h1").count() == 1, url
    pg.goto(f"{server}/compare?runs={r['train0']}&runs={r['train1']}")
    pg.wait_for_selector(".chart[data-drawn='1']")
    assert all(c["points"] == 120 and c["inked"] > 500 for c in charts_drawn(pg))
    only_local(watch, server)


def test_report_file_draws_offline_with_no_request(
    demo: Demo, browser: Any, tmp_path: Path
) -> None:
    path = write_report(demo.store, f"run/{demo.runs['train0']}", tmp_path / "report.html")
    watch = Watch()
    pg = browser.new_page()
    watch.attach(pg)
    try:
        pg.goto(path.as_uri())
        pg.wait_for_selector(".chart[data-drawn='1']")
        assert all(c["inked"] > 500 for c in charts_drawn(pg))
        assert pg.locator("svg.lineage g.node").count() >= 5
        assert watch.requests == [path.as_uri()] and not watch.errors, (
            watch.requests,
            watch.errors,
        )
    finally:
        pg.close()


def test_a_live_run_page_grows_its_chart_by_itself(
    server: str, demo: Demo, page: tuple[Any, Watch]
) -> None:
    """The run page of a running run polls the app: rows flushed after the page loaded appear in
    its chart without a reload, and the page shows the run finished once it is."""
    pg, watch = page
    live = demo.live
    pg.goto(f"{server}/runs/{demo.runs['live']}")
    pg.wait_for_selector(".chart[data-metric='val_acc'][data-drawn='1']")
    before = {c["metric"]: c["points"] for c in charts_drawn(pg)}["val_acc"]
    assert before == len(live.history()) >= 1
    pg.evaluate("() => { window.__notReloaded = true; }")
    for step in range(before, before + 12):
        live.log({"val_acc": 0.2 + step / 100}, step=step)
    live.flush()
    pg.wait_for_function(
        "n => Number(document.querySelector(\".chart[data-metric='val_acc']\").dataset.points) >= n",
        arg=before + 12,
        timeout=15_000,
    )
    assert pg.evaluate("() => window.__notReloaded === true")  # drawn in place, not reloaded
    drawn = {c["metric"]: c for c in charts_drawn(pg)}["val_acc"]
    assert drawn["points"] == before + 12 and drawn["inked"] > 100
    with pg.expect_navigation(timeout=15_000):  # finished: the page reloads as a finished run's
        live.finish()
    pg.wait_for_selector(".chart[data-metric='val_acc'][data-drawn='1']")
    assert "finished" in pg.locator("h1").inner_text()
    assert pg.locator("body[data-live]").count() == 0  # no more polling
    only_local(watch, server)


def test_a_live_run_page_opened_before_any_metric_shows_them_once_flushed(
    server: str, demo: Demo, page: tuple[Any, Watch]
) -> None:
    """A page opened right after the run started ("no metrics logged") gets its charts when the
    first rows are flushed, without the user reloading."""
    pg, watch = page
    run = demo.store.start_run(project="other", job_type="train", config={"lr": 0.02})
    try:
        pg.goto(f"{server}/runs/{run.id}")
        assert pg.locator(".chart").count() == 0
        run.log({"val_acc": 0.3}, step=0)
        run.log({"val_acc": 0.4}, step=1)
        run.flush()
        pg.wait_for_selector(".chart[data-metric='val_acc'][data-drawn='1']", timeout=15_000)
        assert {c["metric"]: c["points"] for c in charts_drawn(pg)}["val_acc"] == 2
    finally:
        run.finish()
    only_local(watch, server)
