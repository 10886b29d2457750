"""A static site of every published suite (``grpo-bench site RESULTS_DIR -o SITE_DIR``): opens from
disk or any static file server, every link relative, nothing loaded from the network.

- ``index.html``: one row per suite (name, date, model, benchmarks, claims with their verdicts, or
  else the best rows, commit, hardware), each linking to the suite's page;
- ``NAME/leaderboard.html``: the suite's leaderboard page (:mod:`.html`, rendered again here, with a
  link back to the index) beside a copy of the suite's files (leaderboard.md/.csv/.json, plots, the
  runs' summaries, metrics and per-problem records; checkpoints left out);
- ``index.json``: the same index, machine-readable; its schema is docs/site.md, versioned by
  ``schema_version`` (:data:`SCHEMA_VERSION`: a reader checks it before anything else).

A suite is a folder of RESULTS_DIR holding a ``leaderboard.json`` (``grpo-bench leaderboard DIR``
writes it); other folders are listed on the console and left out. Claims are read from the
leaderboard JSON's ``claims`` key when it has one (a list of objects with a claim text and a
verdict), else the index shows each benchmark's best variant.
"""

from __future__ import annotations

import html
import json
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path

from ..errors import UserError
from ..io import atomic_write_json, atomic_write_text
from .claims import describe_claim
from .html import to_html
from .render import fmt_interval, fmt_verdict

#: Version of index.json's schema (docs/site.md); raised when a field changes meaning or goes away.
SCHEMA_VERSION = 1

#: What is not copied into the site: checkpoints (weights, and one being written by a run in progress),
#: locks and half-written temporaries.
SKIP = shutil.ignore_patterns("checkpoint", "checkpoint.tmp", "*.lock", ".*.tmp", "leaderboard.html",
                              "grpo-bench.log")

CSS = """
* { box-sizing: border-box; }
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 1240px; color: #222; padding: 1em; }
table { border-collapse: collapse; width: 100%; font-size: 13px; table-layout: fixed; }
th, td { border: 1px solid #ddd; padding: 6px 8px; text-align: left; vertical-align: top; overflow-wrap: anywhere; }
th { background: #f2f2f2; } tr:nth-child(even) td { background: #fafafa; }
col.name { width: 15%; } col.date { width: 8%; } col.model { width: 12%; } col.bench { width: 10%; }
col.claims { width: 30%; } col.commit { width: 12%; } col.hw { width: 13%; }
ul { margin: 0; padding-left: 1.1em; } code { background: #f6f6f6; }
.verdict { font-weight: 600; } footer, .note { font-size: 13px; color: #444; }
"""


def suite_folders(results_dir: Path) -> tuple[list[Path], list[Path]]:
    """(suite folders with a leaderboard.json, other folders), sorted by name."""
    folders = sorted(p for p in results_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [p for p in folders if (p / "leaderboard.json").is_file()], \
        [p for p in folders if not (p / "leaderboard.json").is_file()]


def suite_date(folder: Path) -> tuple[str | None, str | None]:
    """(YYYY-MM-DD, source): the date of the last commit that touched the folder ("git"), else the
    newest run summary's modification time ("mtime"), else (None, None)."""
    try:
        done = subprocess.run(["git", "log", "-1", "--format=%cs", "--", "."], cwd=folder, capture_output=True,
                              text=True, timeout=30)
        if done.returncode == 0 and done.stdout.strip():
            return done.stdout.strip(), "git"
    except (OSError, subprocess.SubprocessError):
        pass
    times = [p.stat().st_mtime for p in folder.glob("runs/*/seed*/summary.json")]
    if not times:
        return None, None
    return datetime.fromtimestamp(max(times), timezone.utc).strftime("%Y-%m-%d"), "mtime"


def _text(item: dict, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if isinstance(item.get(key), (str, int, float)) and str(item[key]).strip():
            return str(item[key])
    return None


def read_claims(board: dict) -> list[dict] | None:
    """The leaderboard's claims as ``[{"id", "claim", "verdict"}]``, read defensively (a list of objects,
    or an object holding them under ``rows``/``claims``, or keyed by id); None when there are none."""
    raw = board.get("claims")
    if isinstance(raw, dict):
        inner = raw.get("rows", raw.get("claims"))
        raw = inner if isinstance(inner, list) else [dict(v, id=k) if isinstance(v, dict) else {"id": k, "claim": v}
                                                     for k, v in raw.items()]
    if not isinstance(raw, list):
        return None
    out = []
    for item in raw:
        if isinstance(item, dict) and isinstance(item.get("claim"), dict) and isinstance(item.get("result"), dict):
            spec = item["claim"]  # the leaderboard's own claims table (report/claims.py, claim_rows)
            out.append({"id": spec.get("name"), "claim": describe_claim(spec).replace("`", ""),
                        "verdict": item["result"].get("verdict")})
            continue
        if isinstance(item, str):
            item = {"claim": item}
        if not isinstance(item, dict):
            continue
        ident = _text(item, ("id", "name", "key"))
        claim = _text(item, ("claim", "statement", "text", "description", "hypothesis")) or ident
        verdict = item.get("verdict")
        verdict = verdict.get("verdict") if isinstance(verdict, dict) else verdict
        verdict = str(verdict) if verdict is not None else _text(item, ("status", "result", "outcome"))
        if claim:
            out.append({"id": ident, "claim": claim, "verdict": verdict})
    return out or None


def best_rows(board: dict) -> list[dict]:
    """Per eval benchmark: the trained variant with the highest mean pass@1, with its interval, its
    verdict against the reference, and the base model's pass@1 (None where there is no base row)."""
    out = []
    for key in board.get("metrics", {}):
        cells = [(r, (r.get("eval", {}).get(key) or {}).get("pass@1")) for r in board.get("rows", [])]
        trained = [(r, c) for r, c in cells if c and c.get("mean") and r["variant"] != "base"]
        base = next((c for r, c in cells if r["variant"] == "base" and c and c.get("mean")), None)
        if not trained:
            continue
        row, cell = max(trained, key=lambda rc: rc[1]["mean"]["value"])
        mean, verdict = cell["mean"], cell.get("verdict") or {}
        out.append({"benchmark": key, "variant": row["variant"], "pass@1": mean["value"], "lo": mean["lo"],
                    "hi": mean["hi"], "verdict": verdict.get("verdict"), "reference": board.get("reference"),
                    "verdict_text": fmt_verdict(verdict) if verdict else None, "text": fmt_interval(mean),
                    "base_pass@1": base["mean"]["value"] if base else None})
    return out


def suite_entry(folder: Path, board: dict) -> dict:
    """One suite's index.json entry (schema: docs/site.md)."""
    prov = board.get("provenance", {})
    config = prov.get("config") or {}
    date, date_source = suite_date(folder)
    hardware = sorted({f"{h.get('cpu', '?')} x{h.get('cores', '?')}" + (f", {h['gpu']}" if h.get("gpu") else "")
                       for h in prov.get("hardware", []) if h})
    name = folder.name
    return {
        "name": name, "suite": prov.get("suite", name), "page": f"{name}/leaderboard.html",
        "leaderboard_json": f"{name}/leaderboard.json", "date": date, "date_source": date_source,
        "model": (config.get("suite") or {}).get("model"), "train_benchmark": (config.get("train") or {}).get("benchmark"),
        "benchmarks": list(board.get("metrics", {})), "variants": [r["variant"] for r in board.get("rows", [])],
        "seeds": list(prov.get("seeds", [])), "reference": board.get("reference"),
        "config_hash": prov.get("config_hash"),
        "commits": [{"commit": c.get("commit"), "dirty": bool(c.get("dirty"))} for c in prov.get("commits", [])],
        "hardware": hardware, "claims": read_claims(board), "best": best_rows(board),
    }


def _summary_cell(entry: dict) -> str:
    if entry["claims"]:
        items = "".join(f"<li>{html.escape(c['claim'])}: <span class=\"verdict\">{html.escape(c['verdict'] or 'no verdict')}"
                        "</span></li>" for c in entry["claims"])
        return f"<ul>{items}</ul>"
    items = []
    for b in entry["best"]:
        text = f"{b['benchmark']}: best {b['variant']} {b['text']} %"
        if b["verdict_text"] and b["verdict_text"] != "-":
            text += f", vs {b['reference']}: {b['verdict_text']}"
        if b["base_pass@1"] is not None:
            text += f" (base {100 * b['base_pass@1']:.1f})"
        items.append(f"<li>{html.escape(text)}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else "-"


def index_html(index: dict) -> str:
    rows = []
    for e in index["suites"]:
        short: dict[str, bool] = {}  # one line per distinct commit, "(dirty)" when any run had local changes
        for c in e["commits"]:
            key = (c["commit"] or "unknown")[:10]
            short[key] = short.get(key, False) or c["dirty"]
        commits = "<br>".join(f"<code>{html.escape(k)}</code>{' (dirty)' if d else ''}" for k, d in short.items()) or "-"
        cells = [f'<a href="{html.escape(e["page"])}">{html.escape(e["name"])}</a>', html.escape(e["date"] or "-"),
                 html.escape(e["model"] or "-"), html.escape(", ".join(e["benchmarks"]) or "-"), _summary_cell(e),
                 commits, html.escape("; ".join(e["hardware"]) or "-")]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    cols = "".join(f'<col class="{c}">' for c in ("name", "date", "model", "bench", "claims", "commit", "hw"))
    head = "".join(f"<th>{h}</th>" for h in ("suite", "date", "model", "benchmarks", "claims and verdicts, or the best rows",
                                             "commit", "hardware"))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>grpo-bench results</title><style>{CSS}</style></head>
<body>
<h1>grpo-bench results</h1>
<p class="note">{len(index["suites"])} suites. Each name opens the suite's leaderboard (tables, plots, runs). pass@1 in %
with its 95% interval; verdicts are against the suite's reference variant. Machine-readable:
<a href="index.json">index.json</a> (schema version {index["schema_version"]}).</p>
<table class="index"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(rows)}
</tbody></table>
<footer><p>Generated by grpo-bench {html.escape(index["generated_by"])} on {html.escape(index["generated"])}.</p></footer>
</body></html>
"""


def copy_suite(folder: Path, target: Path, board: dict) -> None:
    """The suite's files into ``target`` and its page rendered there, with a link back to the index."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(folder, target, ignore=SKIP)
    plots = sorted(p.relative_to(target) for p in (target / "plots").glob("*.png"))
    page = to_html(board, plots, target)
    back = '<p><a href="../index.html">&larr; all suites</a></p>\n'
    atomic_write_text(target / "leaderboard.html", page.replace("<body>\n", "<body>\n" + back, 1))


def write_site(results_dir: Path, site_dir: Path) -> tuple[Path, list[Path]]:
    """Write the site; return (index.html, the folders left out for having no leaderboard.json)."""
    from .. import __version__

    results_dir, site_dir = Path(results_dir).resolve(), Path(site_dir).resolve()
    if not results_dir.is_dir():
        raise UserError(f"{results_dir}: not a folder")
    if site_dir == results_dir or results_dir in site_dir.parents:
        raise UserError(f"-o {site_dir}: must be outside the results folder {results_dir}")
    suites, others = suite_folders(results_dir)
    if not suites:
        raise UserError(f"{results_dir}: no suite folder with a leaderboard.json (grpo-bench leaderboard DIR writes one)")
    site_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for folder in suites:
        try:
            board = json.loads((folder / "leaderboard.json").read_text())
            copy_suite(folder, site_dir / folder.name, board)
            entries.append(suite_entry(folder, board))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"{folder / 'leaderboard.json'}: not a leaderboard written by grpo-bench "
                            f"({type(exc).__name__}: {exc}); rebuild it with grpo-bench leaderboard {folder}") from None
    index = {"schema_version": SCHEMA_VERSION, "generated_by": __version__,
             "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "suites": entries}
    atomic_write_json(site_dir / "index.json", index)
    atomic_write_text(site_dir / "index.html", index_html(index))
    return site_dir / "index.html", others
