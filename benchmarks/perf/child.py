"""What the perf scripts share: each measured side runs in a fresh subprocess of the script itself
and reports one ``RESULT {json}`` line on stdout; peak RSS is read inside that subprocess."""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def peak_rss_gib() -> float:
    """This process's peak resident set size in GiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def report(result: dict) -> None:
    """The child's side of the protocol: one RESULT line."""
    print("RESULT " + json.dumps(result), flush=True)


def run_child(cmd: list[str], side: str, known_failures: dict[str, str] | None = None) -> dict:
    """Run ``cmd`` and return its RESULT. On failure stop with one line: the message of the first
    ``known_failures`` key found in its stderr, else its stderr's tail and the exit status."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not line:
        for needle, message in (known_failures or {}).items():
            if needle in proc.stderr:
                raise SystemExit(f"{side}: {message}")
        print(proc.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"{side} failed (exit {proc.returncode})")
    return json.loads(line[0][len("RESULT "):])
