"""The leaderboard as one static HTML page to publish: opens from disk, loads nothing from the network.

- The first table holds only the columns a reader decides from (pass@1 with its interval, the
  difference to the reference, the verdict, the train reward AUC and the reward failures; see
  :func:`.render.decision_table`), each interval on a second line, so that at 1280 px it fits
  without scrolling; every column is in the folded "All columns" table below it, which scrolls
  inside its own box (sticky first column). A click on a column header sorts by it (a few lines
  of inline JavaScript; numbers by value, ``-`` and empty cells last).
- "What differs between variants": the algorithm, every option and every per-variant ``[train]``
  override whose value is not the same in all variants (the rest of the configuration is identical
  by the refusal rule).
- Curves side by side: train curves beside the eval curves (evaluation during training).
- One row per run with links to its files (config, metrics, eval curve, per-problem records with
  the prompt), relative to the page; only files that exist are linked.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from .claims import claims_html
from .movement import MOVEMENT_TITLE, movement_cells
from .render import decision_table, notes, provenance_lines, table
from .runs import flatten

CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1240px; color: #222; padding: 1em; }
p, li, footer { overflow-wrap: anywhere; }
.scroll { overflow-x: auto; width: fit-content; max-width: 100%; border: 1px solid #ddd; margin: 1em 0; }
table { border-collapse: separate; border-spacing: 0; font-size: 13px; }
th, td { border-right: 1px solid #ddd; border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: right;
         white-space: nowrap; background: #fff; }
th { background: #f2f2f2; white-space: normal; min-width: 6em; max-width: 11em; vertical-align: bottom; }
td:first-child, th:first-child { text-align: left; font-weight: 600; position: sticky; left: 0; z-index: 1; }
th:first-child { background: #f2f2f2; }
table.sortable th { cursor: pointer; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
tr:nth-child(even) td { background: #fafafa; }
table.board th { min-width: 4.5em; max-width: 9em; } table.board th, table.board td { padding: 4px 6px; }
table.board small { font-size: 11px; color: #555; }
details.all > summary { cursor: pointer; margin: 0.5em 0; }
table.runs td { text-align: left; }
.pair { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 0.5em; }
img { max-width: 100%; height: auto; border: 1px solid #eee; }
.notes, footer { font-size: 13px; color: #444; } code, pre { background: #f6f6f6; }
pre { padding: 0.6em; overflow-x: auto; font-size: 12px; max-width: 100%; }
"""

# Click a header to sort by its column; again to reverse. Numbers compare by value, text otherwise.
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.title = "click to sort";
    th.addEventListener("click", function () {
      var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", dir > 0 ? "ascending" : "descending");
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      function num(r) { var m = r.cells[col].textContent.trim().match(/^[+-]?\\d+(\\.\\d+)?/); return m ? parseFloat(m[0]) : null; }
      function text(r) { return r.cells[col].textContent.trim(); }
      rows.sort(function (a, b) {
        var x = num(a), y = num(b);
        if (x !== null && y !== null && x !== y) return dir * (x - y);
        if (x === null && y !== null) return 1;
        if (y === null && x !== null) return -1;
        return dir * text(a).localeCompare(text(b));
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""


def _inline(text: str) -> str:
    """Escape, then turn Markdown `code` spans into <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def _table(header: list[str], rows: list[list[str]], cls: str = "", raw: bool = False) -> str:
    """A table in its scroll box; cells are escaped unless ``raw`` (already HTML)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cell = (lambda c: c) if raw else html.escape
    body = "".join("<tr>" + "".join(f"<td>{cell(c)}</td>" for c in r) + "</tr>\n" for r in rows)
    return f'<div class="scroll"><table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table></div>'


def _two_lines(cell: str) -> str:
    """``47.6 [41.4, 53.8]`` -> the value, then the interval on a second, smaller line (a verdict's
    ``(MDE)`` on a third)."""
    value, sep, rest = cell.partition(" [")
    if not sep:
        return html.escape(cell)
    rest = html.escape(rest).replace("] (", "]<br>(")  # a verdict's minimum detectable difference: a third line
    return f"{html.escape(value)}<br><small>[{rest}</small>"


def movement_html(board: dict) -> str:
    """The runs' inner-step movement against their ratio noise floor (report/movement.py), if any trained."""
    rows = board.get("movement") or []
    if not rows:
        return ""
    legend, header, body, summary = movement_cells(rows)
    return (f"<h2>{MOVEMENT_TITLE}</h2>\n<p>{_inline(legend)}</p>\n{_table(header, body, 'sortable movement')}"
            f"<p>{_inline(summary)}</p>\n")


def decision_html(board: dict) -> str:
    """The decision columns (:func:`.render.decision_table`), narrow enough for 1280 px."""
    header, rows = decision_table(board)
    return _table(header, [[_two_lines(c) for c in r] for r in rows], "sortable board", raw=True)


def variant_diff(board: dict) -> tuple[list[str], list[list[str]]]:
    """Keys whose values differ between the trained variants (algorithm, options and the variant's own
    ``[train]`` overrides; "-" where a variant does not set it), one column per variant."""
    rows = [r for r in board["rows"] if r["variant"] != "base"]
    overrides = {v.get("name"): v.get("train") or {} for v in (board["provenance"].get("config") or {}).get("variants", [])}
    flats = {r["variant"]: {"algorithm": r["algorithm"], **flatten(r["options"], "options"),
                            **{f"train.{k}": v for k, v in overrides.get(r["variant"], {}).items()}} for r in rows}
    keys = sorted(set().union(*flats.values())) if flats else []
    differ = [k for k in keys if len({json.dumps(f.get(k, "-"), default=str) for f in flats.values()}) > 1]
    header = ["key", *flats]
    return header, [[k, *(json.dumps(f.get(k, "-"), default=str).strip('"') for f in flats.values())] for k in differ]


def run_files(run_path: str, root: Path | None, eval_keys: list[str]) -> list[tuple[str, str]]:
    """(label, href) of a run's files, relative to the page; with ``root``, only those that exist."""
    candidates = [("config", "config.json"), ("summary", "summary.json"), ("metrics", "metrics.jsonl"),
                  ("training samples", "samples.jsonl"), ("eval curve", "eval_curve.jsonl")]
    candidates += [(f"{k} records", f"eval/{k}.records.jsonl") for k in eval_keys]
    out = []
    for label, rel in candidates:
        href = f"{run_path}/{rel}"
        if root is None or (root / href).is_file():
            if rel == "samples.jsonl" and root is not None:
                label += extra_columns_note(root / href)
            out.append((label, href))
    return out


def extra_columns_note(samples: Path) -> str:
    """`` (log_extra: a, b)`` when the per-sample records carry ``log_extra`` columns (read from the first row)."""
    with open(samples, encoding="utf-8") as fh:
        first = fh.readline()
    try:
        columns = sorted(json.loads(first).get("extra") or {})
    except (json.JSONDecodeError, AttributeError):
        return ""
    return f" (log_extra: {', '.join(columns)})" if columns else ""


def to_html(board: dict, plots: list[Path], root: Path | None = None) -> str:
    """The page; ``plots`` and run paths are relative to ``root`` (the folder the page is written to)."""
    header, rows = table(board)
    suite = html.escape(str(board["provenance"]["suite"]))
    by_name = {p.stem: p for p in plots}
    pair = [by_name[n] for n in ("train_curves", "eval_curves") if n in by_name]
    rest = [p for p in plots if p not in pair]

    def img(p: Path) -> str:
        src = html.escape(p.as_posix())
        return f'<a href="{src}"><img src="{src}" alt="{html.escape(p.stem)}"></a>'  # click: full size

    figures = (f'<div class="pair">{"".join(img(p) for p in pair)}</div>\n' if pair else "")
    figures += "".join(f"<p>{img(p)}</p>\n" for p in rest)
    diff_header, diff_rows = variant_diff(board)
    diff = (_table(diff_header, diff_rows) if diff_rows else "<p>The variants differ in nothing but their names.</p>")
    eval_keys = list(board["metrics"])
    run_rows = []
    for r in board.get("runs", []):
        links = " · ".join(f'<a href="{html.escape(href)}">{html.escape(label)}</a>'
                           for label, href in run_files(r["path"], root, eval_keys))
        run_rows.append([html.escape(r["variant"]), str(r["seed"]), links or "-"])
    config = html.escape(json.dumps(board["provenance"]["config"], indent=2, sort_keys=True))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Leaderboard: {suite}</title>
<style>{CSS}</style></head>
<body>
<h1>Leaderboard: {suite}</h1>
{claims_html(board)}{decision_html(board)}
<details class="all"><summary>All columns (mean@k, compute, steps to target, ...)</summary>
{_table(header, rows, "sortable full")}
</details>
<div class="notes">{"".join(f"<p>{_inline(n)}</p>" for n in notes(board))}</div>
{movement_html(board)}<h2>What differs between variants</h2>
{diff}
<h2>Curves</h2>
{figures}<h2>Runs</h2>
{_table(["variant", "seed", "files"], run_rows, "sortable runs", raw=True)}
<footer><h2>Provenance</h2>
{"".join(f"<p>{_inline(n)}</p>" for n in provenance_lines(board))}
<details><summary>Resolved config</summary><pre>{config}</pre></details>
</footer>
<script>{SORT_JS}</script>
</body></html>
"""
