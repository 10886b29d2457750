"""The published HTML page, from a real tiny suite run, checked in a real browser (headless Chromium).

At 1280 px the page must not scroll sideways (the wide table scrolls inside its own box, first
column sticky), the inline sorting must work, every image must load, every link must resolve to a
file next to the page, and result files must carry the umask's mode. Chromium is the Debian package
``chromium`` (the Makefile installs it); without it only the browser part is skipped.
"""

import json
import os
import re
import shutil
import stat
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from grpo_bench.config import load_suite
from grpo_bench.execute import run_suite
from grpo_bench.io import atomic_write_text, read_jsonl
from grpo_bench.registry import default_registry

SUITE = """
[suite]
name = "page"
model = "tiny-random"
engine = "hf"
seeds = [0, 1]

[train]
benchmark = "arith"
steps = 2
prompts_per_step = 2
group_size = 4
max_new_tokens = 6
learning_rate = 1e-2
mu = 1
checkpoint_every = 1
rewards = ["math_verify", "format"]
reward_weights = { format = 0.1 }

[eval]
benchmarks = [{ name = "arith", split = "test", limit = 4 }, { name = "gsm8k", split = "test", limit = 2 },
              { name = "math500", split = "test", limit = 2 }]
max_new_tokens = 6
samples = 2
every = 1
every_limit = 2

[[variants]]
algorithm = "grpo"

[[variants]]
algorithm = "tic_grpo"
options = { advantage = "length_corrected", eps_high = 0.28 }
train = { learning_rate = 0.005 }
"""

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1280,900", "--virtual-time-budget=5000"]

# Runs after the page loaded: measures, sorts, and writes what it found into the DOM (read back by --dump-dom).
PROBE = """<script>
window.addEventListener("load", function () {
  var out = {}, root = document.documentElement, table = document.querySelector("table.board");
  out.scrollWidth = root.scrollWidth;
  out.clientWidth = root.clientWidth;
  var box = table.parentElement;
  out.boxScrollWidth = box.scrollWidth;
  out.boxClientWidth = box.clientWidth;
  box.scrollLeft = box.scrollWidth;
  var cell = table.tBodies[0].rows[0].cells[0];
  out.stickyOffset = cell.getBoundingClientRect().left - box.getBoundingClientRect().left;
  out.images = Array.prototype.map.call(document.images, function (i) { return [i.getAttribute("src"), i.naturalWidth]; });
  function column(i) { return Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[i].textContent; }); }
  var heads = table.tHead.rows[0].cells, auc = -1;
  for (var i = 0; i < heads.length; i++) if (heads[i].textContent === "train reward AUC") auc = i;
  heads[0].click(); out.variantAsc = column(0);
  heads[0].click(); out.variantDesc = column(0);
  heads[auc].click(); out.aucAsc = column(auc);
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name in ("href", "src"):
                self.refs.append(value)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("page")
    (tmp / "page.toml").write_text(SUITE)
    registry = default_registry()
    return run_suite(load_suite(tmp / "page.toml", registry), registry, tmp / "results")


def test_every_link_resolves(results):
    page = (results / "leaderboard.html").read_text()
    parser = Links()
    parser.feed(page)
    assert len(parser.refs) > 20
    for ref in parser.refs:
        assert not re.match(r"[a-z]+:", ref), f"not a relative link: {ref}"
        assert (results / ref).is_file(), ref
    run = "runs/tic_grpo/seed1"
    for rel in ("config.json", "metrics.jsonl", "samples.jsonl", "eval_curve.jsonl", "eval/arith-test.records.jsonl",
                "eval/math500-test.records.jsonl"):
        assert f'href="{run}/{rel}"' in page, rel
    assert 'src="plots/train_curves.png"' in page and 'src="plots/eval_curves.png"' in page
    # train and eval curves side by side, in one grid row
    assert re.search(r'<div class="pair"><a href="plots/train_curves.png"><img [^>]*></a><a href="plots/eval_curves.png">', page)
    records = read_jsonl(results / run / "eval" / "arith-test.records.jsonl")
    assert records[0]["prompt"].startswith("What is ")  # the prompt is in every record


def test_variant_diff(results):
    page = (results / "leaderboard.html").read_text()
    diff = page.split("<h2>What differs between variants</h2>")[1].split("<h2>")[0]
    assert "<th>grpo</th><th>tic_grpo</th>" in diff
    assert "<td>algorithm</td><td>grpo</td><td>tic_grpo</td>" in diff
    assert "<td>options.eps_high</td><td>0.2</td><td>0.28</td>" in diff
    assert "<td>options.advantage</td><td>group</td><td>length_corrected</td>" in diff
    assert "<td>train.learning_rate</td><td>-</td><td>0.005</td>" in diff  # a per-variant [train] override
    assert "train.steps" not in diff  # the same in every variant


def test_files_take_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        os.umask(0o077)
        atomic_write_text(tmp_path / "b.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o600
    assert not list(tmp_path.glob(".*.tmp"))


def test_result_files_are_readable_by_others(results):
    mask = os.umask(0)
    os.umask(mask)
    for path in ("leaderboard.html", "leaderboard.json", "runs/grpo/seed0/summary.json",
                 "runs/grpo/seed0/eval/arith-test.records.jsonl"):
        assert stat.S_IMODE((results / path).stat().st_mode) == 0o666 & ~mask, path


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def browse(binary: str, url: str, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra, url],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium; `make test` does)")
def test_page_in_headless_chromium(results, tmp_path):
    page = (results / "leaderboard.html").read_text()
    probe = results / "probe.html"  # beside the page, so relative paths resolve the same way
    probe.write_text(page.replace("</body>", PROBE + "</body>"))
    out = browse(chromium(), probe.as_uri(), tmp_path / "profile", "--dump-dom")
    probe.unlink()
    found = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout)
    assert found, out.stderr[-2000:]
    m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert m["clientWidth"] == 1280
    assert m["scrollWidth"] <= 1280, m  # the page itself never scrolls sideways
    assert m["boxScrollWidth"] > m["boxClientWidth"], m  # the table is wider, and scrolls inside its box
    assert abs(m["stickyOffset"]) <= 2, m  # scrolled to the far right, the first column is still at the left
    assert m["images"] and all(w > 0 for _, w in m["images"]), m["images"]  # every plot loaded
    variants = ["base", "grpo", "tic_grpo"]
    assert m["variantAsc"] == variants and m["variantDesc"] == variants[::-1]
    aucs = [float(v.split()[0]) if v != "-" else None for v in m["aucAsc"]]
    numbers = [a for a in aucs if a is not None]
    assert numbers == sorted(numbers) and aucs[-1] is None  # base has no training: "-" sorts last
    shot = results / "screenshot-1280.png"
    out = browse(chromium(), (results / "leaderboard.html").as_uri(), tmp_path / "profile2", f"--screenshot={shot}",
                 "--window-size=1280,2600")  # the whole page, 1280 px wide, to look at
    assert shot.stat().st_size > 10_000, out.stderr[-2000:]
