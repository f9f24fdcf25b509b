"""The processes the load tools start end with the tool, however the tool ends."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

TOOL = """
import sys, time
from pathlib import Path
from omnistock.loadtest.processes import start
child = start("sleeper", [sys.executable, "-c", "import time; time.sleep(600)"], Path(sys.argv[1]))
print(child.popen.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_started_process_ends_when_the_tool_that_started_it_is_killed(tmp_path: Path, signum: int) -> None:
    tool = subprocess.Popen([sys.executable, "-c", TOOL, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert tool.stdout is not None
        child = psutil.Process(int(tool.stdout.readline()))
        time.sleep(0.5)  # the launcher has handed over to the sleeper
        assert child.is_running() and "time.sleep(600)" in " ".join(child.cmdline())
        os.kill(tool.pid, signum)
        tool.wait(10)
        child.wait(30)  # raises TimeoutExpired if it outlives the tool
        assert not child.is_running()
    finally:
        if tool.poll() is None:
            tool.kill()
