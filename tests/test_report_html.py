"""The published HTML page, from a real tiny suite run, checked in a real browser (headless Chromium).

At 1280 px the page must not scroll sideways, every column a reader decides from must be in view
without scrolling (here and in the widest published leaderboard), the folded full table scrolls
inside its own box (first column sticky), the inline sorting must work, every image must load, every link must resolve to a
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
  out.board = WIDTHS(table);
  var folded = document.querySelector("details.all");
  if (folded) folded.open = true;
  var full = document.querySelector("table.full") || table, box = full.parentElement;
  out.boxScrollWidth = box.scrollWidth;
  out.boxClientWidth = box.clientWidth;
  box.scrollLeft = box.scrollWidth;
  var cell = full.tBodies[0].rows[0].cells[0];
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


# What a reader of the decision table sees without scrolling: the box does not scroll, and each
# column's right edge is inside the 1280 px window (defined inside the probe as WIDTHS).
WIDTHS = """function (table) {
  var box = table.parentElement, heads = table.tHead.rows[0].cells, right = [];
  for (var i = 0; i < heads.length; i++) right.push([heads[i].textContent, heads[i].getBoundingClientRect().right]);
  return {scroll: box.scrollWidth, client: box.clientWidth, right: right, window: window.innerWidth};
}"""
PROBE = PROBE.replace("WIDTHS(", "(" + WIDTHS + ")(")


def decision_headers(board: dict) -> list[str]:
    """The headers a reader decides from, by what they say (independent of the code that picks them)."""
    from grpo_bench.report.render import table

    header, _ = table(board)
    return [h for h in header if h == "variant" or h.endswith(" pass@1 (%)") or "Δpass@1" in h or "verdict" in h
            or h in ("train reward AUC", "reward error / timeout (%)")]


def check_decision_table(m: dict, board: dict) -> None:
    widths = m["board"]
    assert widths["window"] == 1280
    assert widths["scroll"] <= widths["client"], widths  # the decision table does not scroll in its box
    shown = {name: right for name, right in widths["right"]}
    wanted = decision_headers(board)
    assert len(wanted) >= 5 and set(wanted) <= set(shown), (wanted, list(shown))
    for name in wanted:
        assert shown[name] <= 1280, (name, shown[name], widths)


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
    check_decision_table(m, json.loads((results / "leaderboard.json").read_text()))
    assert m["boxScrollWidth"] > m["boxClientWidth"], m  # the full table is wider, and scrolls inside its box
    assert abs(m["stickyOffset"]) <= 2, m  # scrolled to the far right, the first column is still at the left
    assert m["images"] and all(w > 0 for _, w in m["images"]), m["images"]  # every plot loaded
    variants = ["base", "grpo", "tic_grpo"]
    assert m["variantAsc"] == variants and m["variantDesc"] == variants[::-1]
    aucs = [float(re.match(r"-?\d+\.\d+", v).group()) if v != "-" else None for v in m["aucAsc"]]
    numbers = [a for a in aucs if a is not None]
    assert numbers == sorted(numbers) and aucs[-1] is None  # base has no training: "-" sorts last
    shot = results / "screenshot-1280.png"
    out = browse(chromium(), (results / "leaderboard.html").as_uri(), tmp_path / "profile2", f"--screenshot={shot}",
                 "--window-size=1280,2600")  # the whole page, 1280 px wide, to look at
    assert shot.stat().st_size > 10_000, out.stderr[-2000:]


def widest_published() -> Path:
    """The published leaderboard with the most decision columns (then the most rows)."""
    boards = sorted(Path(__file__).resolve().parents[1].glob("results/*/leaderboard.json"))
    assert boards, "no published leaderboard"
    return max(boards, key=lambda p: (len(decision_headers(json.loads(p.read_text()))),
                                      len(json.loads(p.read_text())["rows"])))


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium; `make test` does)")
def test_widest_published_leaderboard_at_1280(tmp_path):
    from grpo_bench.report.html import to_html

    source = widest_published()
    board = json.loads(source.read_text())
    shutil.copytree(source.parent / "plots", tmp_path / "plots")
    plots = sorted(p.relative_to(tmp_path) for p in (tmp_path / "plots").glob("*.png"))
    (tmp_path / "probe.html").write_text(to_html(board, plots).replace("</body>", PROBE + "</body>"))
    out = browse(chromium(), (tmp_path / "probe.html").as_uri(), tmp_path / "profile", "--dump-dom")
    found = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout)
    assert found, out.stderr[-2000:]
    m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    print(source.parent.name, m["board"])
    assert m["scrollWidth"] <= 1280, m
    check_decision_table(m, board)
