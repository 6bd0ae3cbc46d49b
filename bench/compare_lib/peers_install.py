"""Install the peers (LangGraph, DBOS) into their own virtual environment, once.

The versions are pinned so that a regenerated report measures what the last one measured; bump
them deliberately and regenerate ``docs/benchmarks.md``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PEER_REQUIREMENTS = (
    "langgraph==1.2.24",
    "langgraph-checkpoint-sqlite==3.1.2",
    "dbos==3.4.0",
)


class PeerInstallError(RuntimeError):
    """pip or venv failed; the message carries the end of the install log."""


def ensure_peers(peers_dir: Path) -> Path:
    """Return the peers' interpreter, creating the venv and installing the peers if needed."""
    venv = peers_dir / "venv"
    python = venv / "bin" / "python"
    stamp = venv / "dwf-bench-requirements.txt"
    wanted = "\n".join(PEER_REQUIREMENTS) + "\n"
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    peers_dir.mkdir(parents=True, exist_ok=True)
    log = peers_dir / "install.log"
    print(f"installing {', '.join(PEER_REQUIREMENTS)} into {venv} (log: {log})", file=sys.stderr)
    if not python.exists():
        _logged([sys.executable, "-m", "venv", str(venv)], log)
    _logged(
        [str(python), "-m", "pip", "install", "--disable-pip-version-check", *PEER_REQUIREMENTS],
        log,
    )
    stamp.write_text(wanted)
    return python


def _logged(command: list[str], log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n")
        out.flush()
        completed = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False)
    if completed.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-15:])
        raise PeerInstallError(
            f"{command[0]} {command[1]} {command[2]} failed with exit code "
            f"{completed.returncode}; end of {log}:\n{tail}"
        )
