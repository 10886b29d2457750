"""The leaderboard as one static HTML page: inline CSS, PNGs by relative path, opens from disk."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from .render import notes, provenance_lines, table

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1400px; color: #222; padding: 0 1em; }
table { border-collapse: collapse; font-size: 13px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; white-space: nowrap; }
th { background: #f2f2f2; } td:first-child, td:nth-child(2) { text-align: left; font-weight: 600; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.notes, footer { font-size: 13px; color: #444; } code, pre { background: #f6f6f6; }
pre { padding: 0.6em; overflow-x: auto; font-size: 12px; }
"""


def _inline(text: str) -> str:
    """Escape, then turn Markdown `code` spans into <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text, quote=False))


def to_html(board: dict, plots: list[Path]) -> str:
    header, rows = table(board)
    suite = html.escape(str(board["provenance"]["suite"]))
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>\n" for r in rows)
    figures = "".join(f'<p><img src="{html.escape(p.as_posix())}" alt="{html.escape(p.stem)}"></p>\n' for p in plots)
    config = html.escape(json.dumps(board["provenance"]["config"], indent=2, sort_keys=True))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Leaderboard: {suite}</title>
<style>{CSS}</style></head>
<body>
<h1>Leaderboard: {suite}</h1>
<table><thead><tr>{head}</tr></thead><tbody>
{body}</tbody></table>
<div class="notes">{"".join(f"<p>{_inline(n)}</p>" for n in notes(board))}</div>
<h2>Plots</h2>
{figures}<footer><h2>Provenance</h2>
{"".join(f"<p>{_inline(n)}</p>" for n in provenance_lines(board))}
<details><summary>Resolved config</summary><pre>{config}</pre></details>
</footer>
</body></html>
"""
