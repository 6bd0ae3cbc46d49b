"""What the report says about the machine the numbers come from."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def describe_machine(
    interpreters: dict[str, str], work_dir: Path, loads: list[float]
) -> dict[str, str]:
    """CPU, OS, interpreters, the filesystem of the durable files, and how busy the machine was.

    ``loads`` are 1-minute load averages sampled before the first job and after each one. The
    benchmark keeps one core busy itself, so a load well above 1 means other work shared the
    machine, which shows in the spread of the results.
    """
    info = {
        "CPUs": str(os.cpu_count()),
        "CPU model": _cpu_model(),
        "OS": " ".join(os.uname()[i] for i in (0, 2, 4)),
        "dwf interpreter": f"Python {sys.version.split()[0]} ({sys.executable})",
        "durable files": f"{work_dir} ({_filesystem(work_dir.parent)})",
        "load average (1 min): start / max / end": (
            f"{loads[0]:.2f} / {max(loads):.2f} / {loads[-1]:.2f}"
        ),
    }
    for name in ("langgraph", "dbos"):
        if name in interpreters:
            version = subprocess.run(
                [interpreters[name], "-c", "import sys; print(sys.version.split()[0])"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout.strip()
            info["peers interpreter"] = f"Python {version} ({interpreters[name]})"
            break
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def _filesystem(path: Path) -> str:
    """The filesystem type holding ``path``, from /proc/mounts (longest matching mount point)."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            mount, fstype = fields[1], fields[2]
            inside = str(path).startswith(mount.rstrip("/") + "/") or str(path) == mount
            if inside and len(mount) > len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind
