"""A second process that creates a run directory and holds its lock until told to stop (for lock tests)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from supsup_core.train.runs import RunConfig

SCRIPT = """
import json, sys
from supsup_core.train.runs import RunConfig, RunDirectory
run = RunDirectory.create(sys.argv[1], RunConfig.from_dict(json.loads(sys.argv[2])))
print("locked", flush=True)
sys.stdin.readline()
"""


def hold_lock(path: Path, config: RunConfig) -> subprocess.Popen:
    """Start a process that holds ``path``'s run lock (``create``d with ``config``); returns once it holds it."""
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(path), json.dumps(config.to_dict())],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if line.strip() != "locked":
        proc.kill()
        raise RuntimeError(f"the lock holder did not start (printed {line!r}, exit {proc.wait()})")
    return proc
