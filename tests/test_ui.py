"""Route tests of `artifacts ui` (Starlette's TestClient) and of `artifacts report`, on a store holding
hostile content: a run config with a script tag and a file named like an HTML injection."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from starlette.testclient import TestClient
from ui_demo import XSS_CONFIG, XSS_FILE, Demo, build

import artifacts
from artifacts.cli import main
from artifacts.ui import create_app, write_report
from artifacts.ui.charts import downsample, metric_series
from artifacts.ui.render import Links
from artifacts.ui.views import lineage_graph

ARTIFACTS_BIN = (
    shutil.which("artifacts") or "artifacts"
)  # the console script (PYTHONPATH picks our code)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARTIFACTS_CACHE_DIR", str(tmp_path_factory.mktemp("uicache")))
        mp.setenv("ARTIFACTS_USER", "alice")
        d = build(str(tmp_path_factory.mktemp("uistore") / "store"), steps=30)
        yield d
        d.store.close()


@pytest.fixture(scope="module")
def client(demo: Demo) -> TestClient:
    return TestClient(create_app(demo.store, sync_every=0), raise_server_exceptions=False)


def pages(demo: Demo) -> list[str]:
    r = demo.runs
    return [
        "/runs",
        "/runs?group=job_type&metric=summary.val_acc",
        "/runs?sort=summary.val_acc&dir=asc&cols=summary.val_acc,config.lr",
        "/runs?project=gru-sentiment&page=1&per_page=2",
        f"/runs/{r['train0']}",
        f"/runs/{r['prepare']}",
        f"/runs/{r['live']}",
        f"/compare?runs={r['train0']}&runs={r['train1']}",
        "/artifacts",
        "/artifacts/gru",
        "/artifacts/gru/v1",
        "/artifacts/gru/best",
        "/artifacts/reviews/v0",
        "/artifacts/reviews/v0/files/train.csv",
        "/artifacts/reviews/v0/files/split.json",
        "/artifacts/reviews/v0/files/README.txt",
        "/artifacts/reviews/v0/files/blob.bin",
        "/artifacts/gru/v1/diff?against=v0",
        "/lineage?ref=gru:best",
        f"/lineage?ref=run/{r['evaluate']}&depth=1&direction=upstream",
        "/usage",
    ]


def test_every_page_renders_with_security_headers_and_only_local_assets(
    demo: Demo, client: TestClient
) -> None:
    for url in pages(demo):
        resp = client.get(url)
        assert resp.status_code == 200, (url, resp.text[:500])
        csp = resp.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert resp.headers["x-content-type-options"] == "nosniff"
        html = resp.text
        for attr in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert attr.startswith(("/", "?", "#")) or attr == "", (url, attr)
        assert "http://" not in html and "https://" not in html, url
        for tag in re.findall(r"<script\b[^>]*>", html):  # no inline script: external or JSON data
            assert ' src="/static/' in tag or 'type="application/json"' in tag, (url, tag)


def test_store_content_is_escaped_everywhere(demo: Demo, client: TestClient) -> None:
    run = client.get(f"/runs/{demo.runs['prepare']}").text
    assert XSS_CONFIG not in run
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in run
    version = client.get("/artifacts/reviews/v0").text
    assert XSS_FILE not in version and "<img" not in version
    assert "&#34;&gt;&lt;img src=x onerror=alert(document.domain)&gt;.html" in version
    assert "<b>bold?</b>" not in version
    preview = client.get("/artifacts/reviews/v0/files/" + XSS_FILE.replace('"', "%22"))
    assert preview.status_code == 200
    assert "<script>alert(2)" not in preview.text and "&lt;script&gt;alert(2)" in preview.text
    csv = client.get("/artifacts/reviews/v0/files/train.csv").text
    assert "<td>great film</td>" in csv and "&lt;i&gt;x&lt;/i&gt;" in csv
    assert "binary content" in client.get("/artifacts/reviews/v0/files/blob.bin").text


def test_downloads_are_attachments_with_the_exact_bytes(demo: Demo, client: TestClient) -> None:
    resp = client.get("/artifacts/reviews/v0/download/" + XSS_FILE.replace('"', "%22"))
    assert resp.status_code == 200
    assert resp.content == b"<html><script>alert(2)</script></html>"
    disposition = resp.headers["content-disposition"]
    assert (
        disposition.startswith("attachment;")
        and "<" not in disposition
        and '"><' not in disposition
    )
    assert resp.headers["content-type"] == "application/octet-stream"
    v = demo.store.artifact("reviews:v0")
    assert resp.headers["x-artifacts-digest"] == v.file(XSS_FILE).digest


def test_run_page_has_one_chart_per_metric_and_links_its_inputs_and_outputs(
    demo: Demo, client: TestClient
) -> None:
    html = client.get(f"/runs/{demo.runs['train0']}").text
    charts = re.findall(r'data-chart="m-([^"]+)"', html)
    assert charts == ["train_loss", "val_acc", "val_loss"]
    assert 'href="/artifacts/reviews/v0"' in html and 'href="/artifacts/gru/v0"' in html
    assert "baseline" in html and "badge finished" in html
    api = client.get(f"/api/runs/{demo.runs['train0']}").json()
    acc = next(s for s in api["series"] if s["metric"] == "val_acc")
    assert acc["x"] == list(range(30)) and len(acc["y"]) == 30
    assert "badge running" in client.get(f"/runs/{demo.runs['live']}").text
    assert 'data-live="/api/runs/' in client.get(f"/runs/{demo.runs['live']}").text
    assert "badge failed" in client.get(f"/runs/{demo.runs['failed']}").text


def test_runs_table_sorts_groups_and_paginates(demo: Demo, client: TestClient) -> None:
    html = client.get("/runs?sort=config.lr&dir=asc&cols=config.lr").text
    order = re.findall(r'<tr data-run="([^"]+)">', html)
    lrs = {demo.runs["train0"]: 1e-3, demo.runs["train1"]: 3e-3, demo.runs["failed"]: 0.1}
    ranked = [i for i in order if i in lrs]
    assert ranked == sorted(lrs, key=lrs.get)
    grouped = client.get("/runs?group=job_type&metric=summary.val_acc").text
    row = re.search(r'<tr data-group="train">(.*?)</tr>', grouped, re.S).group(1)
    cells = re.findall(r'<td class="num">([^<]*)</td>', row)
    assert cells[0] == "4"  # two baseline runs, the failed one, the live one
    assert float(cells[1]) == pytest.approx(0.1) and float(cells[3]) > 0.85
    page2 = client.get("/runs?per_page=3&page=2").text
    assert "page 2 of 3" in page2 and len(re.findall(r"<tr data-run=", page2)) == 3


def test_compare_overlays_runs_and_puts_differing_config_first(
    demo: Demo, client: TestClient
) -> None:
    html = client.get(f"/compare?runs={demo.runs['train0']},{demo.runs['train1']}").text
    rows = re.findall(r'<tr class="(differs|same)" data-key="([^"]+)">', html)
    config_rows = rows[:3]  # config.dataset, hidden, lr
    assert config_rows[0] == ("differs", "lr") and ("same", "hidden") in config_rows
    data = re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S)
    spec = __import__("json").loads(data.group(1))
    acc = next(c for c in spec["charts"] if c["metric"] == "val_acc")
    assert len(acc["series"]) == 2


def test_version_page_shows_tensors_shared_with_previous_aliases_and_lineage(
    demo: Demo, client: TestClient
) -> None:
    html = client.get("/artifacts/gru/v1").text
    shared = dict(re.findall(r'<tr data-tensor="model/([^"]+)">.*?badge (shared|new)', html, re.S))
    assert shared == {
        "embedding.weight": "shared",
        "fc.bias": "new",
        "fc.weight": "new",
        "gru.weight": "new",
    }
    assert "float32" in html and "[16, 4]" in html
    best = client.get("/artifacts/gru/best").text
    assert 'class="badge alias">best</span>' in best and "gru:v" in best
    diff = client.get("/artifacts/gru/v1/diff?against=v0").text
    assert diff.count('class="changed"') == 4 and "embedding.weight" not in diff


def test_lineage_graph_has_every_node_as_a_link_and_collapses_look_alike_checkpoints(
    demo: Demo, client: TestClient
) -> None:
    html = client.get(f"/lineage?ref=run/{demo.runs['evaluate']}&depth=20").text
    nodes = re.findall(r'data-node="([^"]+)"', html)
    assert "reviews:v0" in nodes and "vocab:v0" in nodes and f"run/{demo.runs['evaluate']}" in nodes
    best = demo.store.artifact("gru:best").ref
    assert best in nodes
    around_train = client.get(f"/lineage?ref=run/{demo.runs['train0']}&depth=20").text
    groups = re.findall(r'data-node="(group/[^"]+)"', around_train)
    assert len(groups) == 1  # the checkpoints nobody evaluated, folded into one node
    assert "gru ×4" in around_train and 'href="/artifacts/gru"' in around_train
    hrefs = re.findall(
        r'<g class="node[^"]*" data-node="[^"]+" transform="[^"]+">\s*<a href="([^"]+)">', html
    )
    assert len(hrefs) == len(nodes)
    edges = set(re.findall(r'data-source="([^"]+)" data-target="([^"]+)"', html))
    assert ("reviews:v0", f"run/{demo.runs['vocab']}") in edges
    assert (f"run/{demo.runs['vocab']}", "vocab:v0") in edges
    assert (best, f"run/{demo.runs['evaluate']}") in edges
    shallow = lineage_graph(demo.store, f"run/{demo.runs['evaluate']}", Links(), "upstream", 1)
    assert {n.id for n in shallow.nodes} >= {best, f"run/{demo.runs['evaluate']}"}
    assert f"run/{demo.runs['prepare']}" not in {n.id for n in shallow.nodes}


@pytest.mark.parametrize(
    ("url", "status", "says"),
    [
        ("/artifacts/nope", 404, "no artifact named"),
        ("/artifacts/gru/v99", 404, "gru:v99 not found"),
        ("/artifacts/gru/nosuchalias", 404, "no version of"),
        ("/artifacts/bad%20name", 400, "invalid artifact name"),
        ("/artifacts/reviews/v0/files/missing.txt", 404, "has no file"),
        ("/artifacts/reviews/v0/files/a/%2E%2E/train.csv", 400, "invalid path"),
        ("/artifacts/reviews/v0/download/%2Fetc%2Fpasswd", 400, "invalid path"),
        ("/artifacts/reviews/v0/download/missing.txt", 404, "has no file"),
        ("/runs/0123456789ab", 404, "not found"),
        ("/runs/%3Cscript%3E", 400, "invalid run id"),
        ("/runs?page=999999", 404, "does not exist"),
        ("/runs?page=100000000000000000000", 400, "page must be"),
        ("/runs?page=-1", 400, "page must be"),
        ("/runs?sort=config.a%22b", 400, "invalid query"),
        ("/runs?sort=DROP%20TABLE", 400, "invalid query"),
        ("/runs?q=summary.acc%20%3E", 400, "invalid query"),
        ("/runs?cols=bogus", 400, "unknown column"),
        ("/lineage", 400, "choose what to trace"),
        ("/lineage?ref=gru:best&depth=1000", 400, "depth must be"),
        ("/lineage?ref=gru:best&direction=sideways", 400, "direction must be"),
        ("/compare", 400, "select at least two runs"),
        ("/artifacts/gru/v1/diff", 400, "choose a version"),
        ("/nowhere", 404, "Not Found"),
    ],
)
def test_bad_input_gets_a_clear_error_page_with_the_right_status(
    client: TestClient, url: str, status: int, says: str
) -> None:
    resp = client.get(url)
    assert resp.status_code == status, resp.text[:300]
    assert says in resp.text
    assert "Traceback" not in resp.text and "<h1>" in resp.text


def test_filter_box_errors_are_one_line_and_nothing_changes(demo: Demo, client: TestClient) -> None:
    before = demo.store.index.last_seq
    resp = client.get("/runs?q=" + "'; DROP TABLE runs; --")
    assert resp.status_code == 400 and 'class="message"' in resp.text
    assert demo.store.index.last_seq == before and len(demo.store.runs()) == 7


def test_read_only_no_route_accepts_a_write(demo: Demo, client: TestClient) -> None:
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)("/runs").status_code == 405
        assert getattr(client, method)("/artifacts/gru/v0").status_code == 405


def test_new_runs_appear_without_a_restart(demo: Demo, client: TestClient) -> None:
    store2 = artifacts.open_store(demo.store.url)  # another writer, its own index
    with store2.start_run(project="late", job_type="probe") as run:
        run.log({"x": 1})
    assert f'data-run="{run.id}"' in client.get("/runs?project=late").text
    assert client.get("/api/head").json()["seq"] == store2.index.last_seq


def test_token_is_required_once_then_a_cookie(demo: Demo) -> None:
    app = create_app(demo.store, token="s3cret-token")
    c = TestClient(app, follow_redirects=False)
    assert c.get("/runs").status_code == 401
    assert c.get("/static/app.js").status_code == 401
    assert c.get("/runs?token=wrong").status_code == 401
    resp = c.get("/runs?token=s3cret-token&project=gru-sentiment")
    assert resp.status_code == 303 and resp.headers["location"] == "/runs?project=gru-sentiment"
    assert "httponly" in resp.headers["set-cookie"].lower()
    assert c.get("/runs").status_code == 200
    bare = TestClient(app)
    assert bare.get("/runs", headers={"authorization": "Bearer s3cret-token"}).status_code == 200


def test_loopback_server_refuses_foreign_host_headers(demo: Demo) -> None:
    c = TestClient(
        create_app(demo.store, allowed_hosts=["127.0.0.1", "localhost"]),
        base_url="http://127.0.0.1:9",
    )
    assert c.get("/runs").status_code == 200
    assert c.get("/runs", headers={"host": "evil.example:9"}).status_code == 400


def test_report_is_self_contained_escaped_and_lists_every_digest(
    demo: Demo, tmp_path: Path
) -> None:
    out = write_report(demo.store, f"run/{demo.runs['train0']}", tmp_path / "r.html")
    html = out.read_text()
    assert not re.search(r'(?:src|href|action)="', html.replace('href="#', "")), "a link or source"
    assert "http://" not in html and "https://" not in html and "url(#arrow)" in html
    nonce = re.search(r"script-src 'nonce-([^']+)'", html).group(1)
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all(
        f'nonce="{nonce}"' in s or 'type="application/json"' in s for s in scripts
    )
    assert "uPlot" in html and 'data-chart="m-val_acc"' in html
    for v in demo.store.lineage(f"run/{demo.runs['train0']}", "both").versions():
        assert v.attrs["digest"] in html
    version = write_report(demo.store, "reviews:v0", tmp_path / "v.html").read_text()
    assert XSS_FILE not in version and "<img" not in version
    for f in demo.store.artifact("reviews:v0").files():
        assert f.digest in version
    prep = write_report(demo.store, f"run/{demo.runs['prepare']}", tmp_path / "p.html").read_text()
    assert XSS_CONFIG not in prep


def test_report_command_and_its_errors(demo: Demo, tmp_path: Path) -> None:
    runner = CliRunner()
    target = tmp_path / "gru.html"
    res = runner.invoke(main, ["--store", demo.store.url, "report", "gru:best", "-o", str(target)])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and target.stat().st_size > 50_000
    bad = runner.invoke(
        main, ["--store", demo.store.url, "report", "nope:v0", "-o", str(tmp_path / "x.html")]
    )
    assert bad.exit_code == 1 and "no artifact named 'nope'" in bad.output
    assert not (tmp_path / "x.html").exists()


def test_ui_command_needs_a_token_off_loopback(demo: Demo, tmp_path: Path) -> None:
    import httpx

    proc = subprocess.Popen(
        [ARTIFACTS_BIN, "--store", demo.store.url, "ui", "--host", "0.0.0.0", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        m = re.search(r"http://0\.0\.0\.0:(\d+)/\?token=([\w-]+)", line)
        assert m, line + proc.stderr.read() if proc.poll() is not None else line
        port, token = m.groups()
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                assert httpx.get(f"{base}/runs", timeout=5).status_code == 401
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        ok = httpx.get(f"{base}/runs?token={token}", follow_redirects=True, timeout=10)
        assert ok.status_code == 200 and "gru-sentiment" in ok.text
    finally:
        proc.terminate()
        proc.wait(10)


def test_downsampling_keeps_the_envelope_within_the_pixel_budget() -> None:
    x = np.arange(100_000, dtype=float)
    y = np.sin(x / 500)
    y[77_777] = 9.0
    xs, ys = downsample(x, y, 800)
    assert len(xs) <= 802 and xs[0] == 0 and xs[-1] == 99_999
    assert ys.max() == 9.0 and ys.min() == pytest.approx(y.min())
    assert np.all(np.diff(xs) > 0)
    rows = [{"_step": 9 - i, "a": i, "b": None, "c": "text", "d": True} for i in range(10)]
    series = metric_series([*rows, {"a": float("nan")}], 800)
    assert [s.metric for s in series] == ["a"] and series[0].points == 10
    assert series[0].x == tuple(range(10)) and series[0].y == tuple(range(9, -1, -1))


def test_package_data_ships_every_template_and_asset() -> None:
    import fnmatch

    import tomllib

    root = Path(__file__).resolve().parent.parent
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["artifacts.ui"]
    ui = root / "artifacts" / "ui"
    assets = [
        p.relative_to(ui).as_posix()
        for d in ("templates", "static")
        for p in (ui / d).rglob("*")
        if p.is_file()
    ]
    assert len(assets) > 15
    missing = [a for a in assets if not any(fnmatch.fnmatchcase(a, g) for g in globs)]
    assert not missing, f"add these to [tool.setuptools.package-data]: {missing}"
    assert (ui / "static/vendor/uplot/LICENSE").read_text().startswith("The MIT License")


def test_the_ui_and_report_do_not_import_torch() -> None:
    code = "import sys, artifacts.cli, artifacts.ui, artifacts.ui.routes; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.s3
def test_pages_and_downloads_work_the_same_on_s3(s3_backend: Any) -> None:
    store = artifacts.open_store(s3_backend.url, storage_options=s3_backend.storage_options)
    with store.start_run(project="p", job_type="train", config={"lr": 0.1}) as run:
        run.log({"val_acc": 0.5}, step=0)
        run.log({"val_acc": 0.7}, step=1)
        v = run.log_artifact(
            artifacts.Artifact("d", type="dataset").add_bytes("a.csv", b"x,y\n1,2\n")
        )
    c = TestClient(create_app(store, sync_every=0))
    assert f'data-run="{run.id}"' in c.get("/runs").text
    assert 'data-chart="m-val_acc"' in c.get(f"/runs/{run.id}").text
    assert "<td>1</td>" in c.get(f"/artifacts/d/v{v.version}/files/a.csv").text
    assert c.get(f"/artifacts/d/v{v.version}/download/a.csv").content == b"x,y\n1,2\n"
    assert "d:v0" in c.get("/lineage?ref=d:v0").text
    store.close()


def test_chart_columns_keep_only_numbers() -> None:
    from artifacts.series import from_rows

    rows: list[dict[str, Any]] = [{"a": 1}, {"a": None}, {}, {"a": 2.5}, {"a": True}, {"a": "3"}]
    got = from_rows(rows)["a"]
    assert got.steps.tolist() == [0, 3] and got.values.tolist() == [1.0, 2.5]
    huge = from_rows([{"a": 1}, {"a": 10**400}])["a"]  # an int past a float's range: no crash
    assert huge.values.tolist() == [1.0]
