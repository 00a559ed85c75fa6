"""edgeslm report / compare over a real farm run (tiny int8 bundle on two local devices).

The HTML page is loaded in Debian's headless chromium (--dump-dom): every plot lays out with a size (the
page's own script counts them after layout), the numbers in the table equal the store's, the wrong row is
red. A "wrong" result and an MCU-style result with extra fields (instructions_per_token, flash_bytes, no
decode numbers) are added through the Store API as stand-ins for a doctored bundle and the qemu-cortex-m
driver, to show the renderers tolerate missing/extra metric fields. compare() is checked on synthetic
samples (a drop beyond the noise is flagged, one within it is not) and through the CLI.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import re
import subprocess
import sys

import pytest

from edgeslm.farm.farmfile import load_farm
from edgeslm.farm.matrix import Settings, run_matrix
from edgeslm.farm.store import Store
from edgeslm.report import render
from edgeslm.report.compare import compare
from tests.farm_helpers import farm_bundle, require, write_farm

EDGESLM = [sys.executable, "-m", "edgeslm.cli.main"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    bundle = farm_bundle(tmp_path_factory)
    farm = load_farm(write_farm(tmp / "farm.toml", [
        {"id": "pc-a", "driver": "local", "target": "host", "workdir": str(tmp / "a")},
        {"id": "pc-b", "driver": "local", "target": "host", "workdir": str(tmp / "b")}], store=tmp / "r.sqlite"))
    store = Store(farm.store)
    doc = run_matrix(farm, [str(bundle)], store, prompt_lengths=(8, 24), threads=(1,), progress=False,
                     settings=Settings(max_new_tokens=6, reps=3, warmup=0, timeout_s=120))
    assert doc["status"] == "ok" and len(doc["results"]) == 4
    wrong = copy.deepcopy(doc["results"][0])
    wrong.update(requested_device="pc-wrong", device="pc-wrong", status="wrong")
    wrong["accuracy"] = {**wrong["accuracy"], "status": "wrong", "first_mismatch": 2, "got": [5, 6, 7]}
    store.add_result(doc["run_id"], "stand-in|wrong", wrong)
    mcu = {"device": "mps2-an386", "requested_device": "mps2-an386", "target": "cortex-m4", "backend": "micro",
           "quant": "int8", "prompt_length": 8, "threads": 1, "status": "ok", "instructions_per_token": 123456,
           "flash_bytes": 200000, "ram_bytes": 64000, "provenance": {"device_id": "mps2-an386"}}
    store.add_result(doc["run_id"], "stand-in|mcu", mcu)
    return {"farm": farm, "store": store, "doc": doc, "run_id": doc["run_id"], "tmp": tmp}


def cli(*args):
    return subprocess.run([*EDGESLM, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_html_renders_in_chromium_and_numbers_match_the_store(run):
    require("chromium")
    out = run["tmp"] / "report.html"
    proc = cli("report", run["run_id"], "--farm", run["farm"].path, "-o", out)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text()
    # self-contained: nothing fetched (the only URLs are SVG/XLink namespace names)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:|//)", page) and "<link" not in page
    assert set(re.findall(r"https?://[^\"' >]+", page)) <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    dom = subprocess.run(["chromium", *CHROMIUM_FLAGS, f"--user-data-dir={run['tmp'] / 'chromium'}", "--dump-dom",
                          out.as_uri()], capture_output=True, text=True, timeout=120).stdout
    assert 'data-plots="5"' in dom and 'data-plots-rendered="5"' in dom, dom[:500]
    rows = run["store"].results(run["run_id"])
    assert len(rows) == 6
    for r in rows:
        if r["job_key"].startswith("stand-in"):
            continue
        cell = re.search(rf'data-key="{re.escape(r["job_key"])}" data-field="decode_tps_mean">([^<]+)<', dom)
        assert cell and float(cell.group(1)) == pytest.approx(r["decode_tokens_per_s"]["mean"], abs=1e-3)
        ttft = re.search(rf'data-key="{re.escape(r["job_key"])}" data-field="ttft_ms_median">([^<]+)<', dom)
        assert float(ttft.group(1)) == pytest.approx(r["ttft_ms"][str(r["prompt_length"])]["median"], abs=1e-3)
    assert re.search(r'<tr class="wrong"><td[^>]*>pc-wrong<', dom) and 'id="n-wrong">1<' in dom
    assert "first mismatch at step 2" in dom and "instructions_per_token=123456" in dom


def test_md_json_csv_formats(run):
    rid, store = run["run_id"], run["store"]
    md = render(store, rid, "md")
    assert "**WRONG**" in md and md.count("\n| ") == 7
    js = json.loads(render(store, rid, "json"))
    assert js["run_id"] == rid and len(js["records"]) == 6
    mcu = next(r for r in js["records"] if r["device"] == "mps2-an386")
    assert mcu["extra"]["instructions_per_token"] == 123456 and mcu["decode_tps_mean"] is None
    rows = list(csv.DictReader(io.StringIO(cli("report", rid, "--store", store.path, "-f", "csv").stdout)))
    assert len(rows) == 6 and {r["run_id"] for r in rows} == {rid}
    by_key = {r["job_key"]: r for r in rows}
    for r in store.results(rid):
        if r.get("decode_tokens_per_s"):
            assert float(by_key[r["job_key"]]["decode_tps_mean"]) == r["decode_tokens_per_s"]["mean"]
    assert_err = cli("report", "no-such-run", "--store", run["store"].path)
    assert assert_err.returncode == 2 and "no run 'no-such-run'" in assert_err.stderr


def test_compare_flags_only_changes_beyond_the_noise(run, tmp_path):
    store = Store(tmp_path / "c.sqlite")
    base = {"bundle_sha256": "s", "requested_device": "d", "device": "d", "prompt_length": 8, "threads": 1,
            "status": "ok", "ttft_ms": {"8": {"samples": [10.0, 10.2, 9.8, 10.0]}}}
    for rid, decode in (("A", [100, 101, 99, 100]), ("B", [99.5, 100.5, 100, 99]), ("C", [80, 81, 79, 80])):
        store.create_run(rid, {})
        store.add_result(rid, "k", {**base, "decode_tokens_per_s": {"samples": decode}})
    assert compare(store, "A", "B")["regressions"] == 0
    worse = compare(store, "A", "C")
    assert worse["regressions"] == 1 and "decode_tokens_per_s 100 -> 80" in worse["items"][0]["regressions"][0]
    assert compare(store, "C", "A")["regressions"] == 0                   # faster is not a regression
    proc = cli("compare", "A", "C", "--store", store.path)
    assert proc.returncode == 1 and "REGRESSION d p8 t1" in proc.stderr
    same = compare(run["store"], run["run_id"], run["run_id"])
    assert same["regressions"] == 0 and same["matched"] == 6
