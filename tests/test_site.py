"""``grpo-bench site``: a static site of the published suites. Every link resolves inside the site, no
page overflows at 1280 px (headless Chromium), and index.json follows the schema docs/site.md documents."""

from __future__ import annotations

import csv
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pytest
from grpo_bench.cli import main
from grpo_bench.report.site import SCHEMA_VERSION, read_claims
from test_report_html import browse, chromium

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "docs/site-index.schema.json").read_text())


class Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs = []

    def handle_starttag(self, tag, attrs):
        self.refs += [value for name, value in attrs if name in ("href", "src")]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "site"
    assert main(["site", str(ROOT / "results"), "-o", str(out)]) == 0
    return out


def published() -> list[str]:
    return sorted(p.parent.name for p in ROOT.glob("results/*/leaderboard.json"))


def test_every_link_resolves(site):
    pages = sorted(site.rglob("*.html"))
    assert sorted(p.relative_to(site).as_posix() for p in pages) == sorted(
        ["index.html", *(f"{n}/leaderboard.html" for n in published())])
    for page in pages:
        parser = Links()
        parser.feed(page.read_text())
        assert parser.refs, page
        for ref in parser.refs:
            assert not re.match(r"[a-z]+:|/", ref), f"{page}: not a relative link: {ref}"
            target = (page.parent / ref.split("#")[0]).resolve()
            assert target.is_file() and site.resolve() in target.parents, f"{page}: {ref}"
    index = (site / "index.html").read_text()
    for name in published():
        assert f'href="{name}/leaderboard.html"' in index
        assert 'href="../index.html"' in (site / name / "leaderboard.html").read_text()


def test_checkpoints_and_locks_stay_out_of_the_site(tmp_path):
    """A results folder with a run in progress: its weights (checkpoint/, checkpoint.tmp/) and lock are not copied."""
    results = tmp_path / "results"
    shutil.copytree(ROOT / "results" / "smoke", results / "smoke")
    run = next((results / "smoke" / "runs").glob("*/seed*"))
    for part in ("checkpoint", "checkpoint.tmp"):
        (run / part).mkdir()
        (run / part / "state.pt").write_bytes(b"weights")
    (run / ".lock").write_text("1234")
    assert main(["site", str(results), "-o", str(tmp_path / "site")]) == 0
    copied = tmp_path / "site" / "smoke" / run.relative_to(results / "smoke")
    assert (copied / "summary.json").is_file()
    assert sorted(p.name for p in copied.iterdir() if p.name in ("checkpoint", "checkpoint.tmp", ".lock")) == []


def check(value, schema: dict, path: str = "$") -> None:
    """A small JSON-schema check (the keywords docs/site-index.schema.json uses), independent of any library."""
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    if "const" in schema:
        assert value == schema["const"], path
    if "enum" in schema:
        assert value in schema["enum"], path
    wanted = schema.get("type")
    if wanted:
        wanted = wanted if isinstance(wanted, list) else [wanted]
        ok = any((t == "integer" and isinstance(value, int) and not isinstance(value, bool))
                 or (t == "number" and isinstance(value, (int, float)) and not isinstance(value, bool))
                 or (t in types and isinstance(value, types[t])) for t in wanted)
        assert ok, f"{path}: {value!r} is not {wanted}"
    if isinstance(value, str) and "pattern" in schema:
        assert re.search(schema["pattern"], value), f"{path}: {value!r}"
    if isinstance(value, dict):
        assert set(schema.get("required", [])) <= set(value), f"{path}: missing {set(schema['required']) - set(value)}"
        if schema.get("additionalProperties") is False:
            assert set(value) <= set(schema["properties"]), f"{path}: unknown {set(value) - set(schema['properties'])}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                check(value[key], sub, f"{path}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            check(item, schema["items"], f"{path}[{i}]")


def schema_fields(schema: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, sub in schema.get("properties", {}).items():
        out.add(prefix + key)
        items = sub.get("items", {})
        out |= schema_fields(sub, f"{prefix}{key}.") | schema_fields(items, f"{prefix}{key}[].")
    return out


def test_index_json_follows_the_documented_schema(site):
    index = json.loads((site / "index.json").read_text())
    assert index["schema_version"] == SCHEMA_VERSION == SCHEMA["properties"]["schema_version"]["const"]
    check(index, SCHEMA)
    try:
        import jsonschema
    except ImportError:
        jsonschema = None
    if jsonschema is not None:
        jsonschema.validate(index, SCHEMA)
    fields = (ROOT / "docs/site.md").read_text().split("## index.json")[1]
    documented = set(re.findall(r"^\| `([^`]+)` \|", fields, re.M))
    assert documented == schema_fields(SCHEMA)  # every field documented, nothing documented that is not there
    assert [s["name"] for s in index["suites"]] == published()
    # a broken file fails the check: the checker is not vacuous
    with pytest.raises(AssertionError):
        check(dict(index, suites=[dict(index["suites"][0], seeds=["0"])]), SCHEMA)


def test_best_rows_are_the_highest_pass_at_1(site):
    """Against the published CSV (read here, not through the site code): the best trained variant per benchmark."""
    index = {s["name"]: s for s in json.loads((site / "index.json").read_text())["suites"]}
    for name in published():
        rows = list(csv.DictReader((ROOT / "results" / name / "leaderboard.csv").open()))
        for best in index[name]["best"]:
            column = f"{best['benchmark']} pass@1"
            trained = [r for r in rows if r["variant"] != "base"]
            top = max(float(r[column]) for r in trained)
            assert best["pass@1"] == pytest.approx(top)
            assert best["variant"] in [r["variant"] for r in trained if float(r[column]) == top]
            base = [float(r[column]) for r in rows if r["variant"] == "base"]
            assert best["base_pass@1"] == (pytest.approx(base[0]) if base else None)
    v2 = index["arith-paper-variants-v2"]["best"][0]  # the published table: dr_grpo 49.7 [47.6, 51.8], base 35.0
    assert (v2["variant"], v2["text"], v2["verdict"]) == ("dr_grpo", "49.7 [47.6, 51.8]", "undecided")


def test_claims_are_shown_with_their_verdicts(tmp_path):
    source = ROOT / "results" / "arith-paper-variants-v2"
    suite = tmp_path / "results" / "claimed"
    suite.mkdir(parents=True)
    shutil.copytree(source / "plots", suite / "plots")
    board = json.loads((source / "leaderboard.json").read_text())
    spec = {"name": "lower lr learns less", "variant": "grpo_lr_tenth", "reference": "grpo", "kind": "difference",
            "margin": 0.0, "metric": "pass@1", "target": "arith-test", "alpha": 0.05}
    result = {"verdict": "different", "estimate": -8.9, "lo": -15.5, "hi": -2.3, "level": 0.95, "seeds": 5}
    board["claims"] = [{"claim": spec, "result": result, "seeds": [0, 1, 2, 3, 4], "looks": None,
                        "what_would_change": "decided"}]  # the shape report/claims.py writes
    (suite / "leaderboard.json").write_text(json.dumps(board))
    assert main(["site", str(tmp_path / "results"), "-o", str(tmp_path / "site")]) == 0
    entry = json.loads((tmp_path / "site" / "index.json").read_text())["suites"][0]
    text = "lower lr learns less: grpo_lr_tenth different from grpo (arith-test pass@1, alpha 0.05)"
    assert entry["claims"] == [{"id": "lower lr learns less", "claim": text, "verdict": "different"}]
    check(json.loads((tmp_path / "site" / "index.json").read_text()), SCHEMA)
    page = (tmp_path / "site" / "index.html").read_text()
    assert f'{text}: <span class="verdict">different</span>' in page
    # other shapes, read defensively
    assert read_claims({"claims": [{"id": "c1", "claim": "t within 3", "verdict": "undecided"},
                                   {"id": "c2", "statement": "s", "verdict": {"verdict": "different"}}]}) == [
        {"id": "c1", "claim": "t within 3", "verdict": "undecided"}, {"id": "c2", "claim": "s", "verdict": "different"}]
    assert "best dr_grpo" not in page  # claims replace the best rows
    assert read_claims({"claims": {"c3": {"text": "x", "status": "equivalent"}}}) == [
        {"id": "c3", "claim": "x", "verdict": "equivalent"}]
    assert read_claims({"claims": "not a table"}) is None and read_claims({}) is None


def test_site_refuses_its_own_results_folder(tmp_path, capsys):
    (tmp_path / "results").mkdir()
    assert main(["site", str(tmp_path / "results"), "-o", str(tmp_path / "results" / "site")]) == 2
    assert main(["site", str(tmp_path / "results"), "-o", str(tmp_path / "site")]) == 2  # no suite in it
    assert "no suite folder with a leaderboard.json" in capsys.readouterr().err
    (tmp_path / "results" / "broken").mkdir()
    (tmp_path / "results" / "broken" / "leaderboard.json").write_text('{"rows": []}')
    assert main(["site", str(tmp_path / "results"), "-o", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "broken/leaderboard.json: not a leaderboard written by grpo-bench" in err


# Measures the page after load: sideways scrolling, and every element whose right edge leaves the
# window or whose content overflows its own box (tables inside a scroll box are allowed to).
PROBE = """<script>
window.addEventListener("load", function () {
  var out = {scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth,
             outside: [], overflowing: []};
  document.querySelectorAll("body *").forEach(function (el) {
    if (el.closest(".scroll") && !el.classList.contains("scroll")) return;
    var r = el.getBoundingClientRect();
    if (r.width && r.right > out.clientWidth + 1) out.outside.push(el.tagName + ":" + el.textContent.slice(0, 40));
    if (/^(TD|TH)$/.test(el.tagName) && el.scrollWidth > el.clientWidth + 1) out.overflowing.push(el.textContent.slice(0, 40));
  });
  var pre = document.createElement("pre"); pre.id = "probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


@pytest.mark.skipif(chromium() is None, reason="chromium is not installed (apt-get install chromium; `make test` does)")
def test_pages_fit_1280_px(site, tmp_path):
    for page in sorted(site.rglob("*.html")):
        probe = page.with_name("probe.html")  # beside the page, so relative paths resolve the same way
        probe.write_text(page.read_text().replace("</body>", PROBE + "</body>"))
        out = browse(chromium(), probe.as_uri(), tmp_path / f"profile-{page.parent.name}", "--dump-dom")
        probe.unlink()
        found = re.search(r'<pre id="probe">(.*?)</pre>', out.stdout)
        assert found, out.stderr[-2000:]
        m = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
        assert m["clientWidth"] == 1280
        assert m["scrollWidth"] <= 1280 and not m["outside"] and not m["overflowing"], (page, m)
    shot = tmp_path / "index-1280.png"
    out = browse(chromium(), (site / "index.html").as_uri(), tmp_path / "profile-shot", f"--screenshot={shot}")
    assert shot.stat().st_size > 5_000, out.stderr[-2000:]
