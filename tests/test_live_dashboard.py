import io
import logging
import os
import sys
import time

import pytest
from helpers import run_in_pty
from rich.console import Console

from virnucpro.monitoring.live_dashboard import (
    Dashboard,
    DashboardState,
    WorkerStatus,
    summary_line,
)
from virnucpro.monitoring.telemetry import RunEvent

STATE = DashboardState(
    workers=[
        WorkerStatus("gpu-0", 0, 87.0, 30 * 2**30, 80 * 2**30, 41_234.0, 3, 12, 1),
        WorkerStatus("gpu-1", 1, None, None, None, 0.0, 0, 0, 0),
    ],
    events=[RunEvent(time.time(), "stolen", "gpu-0", "group 17 from gpu-1")],
    done=12,
    total=40,
)


def test_renders_table_on_a_terminal() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with Dashboard(console=console, interval=2.0) as dashboard:
        assert dashboard.live
        dashboard.update(STATE)
    text = out.getvalue()
    for header in ("worker", "GPU", "util %", "memory", "tokens/s", "queued", "stolen"):
        assert header in text
    assert "30.0/80 GiB" in text
    assert "41,234" in text
    assert "groups 12/40" in text
    assert "group 17 from gpu-1" in text


SCRIPT = """
import time
from virnucpro.monitoring.live_dashboard import Dashboard, DashboardState, WorkerStatus
state = DashboardState([WorkerStatus("gpu-0", 0, 55.0, tokens_per_second=1000.0)], [], 1, 2)
with Dashboard(interval=0.5) as dashboard:
    dashboard.update(state)
    time.sleep(0.6)
"""


def test_live_dashboard_in_a_real_pty() -> None:
    env = {**os.environ, "COLUMNS": "100", "LINES": "30", "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    returncode, text = run_in_pty([sys.executable, "-c", SCRIPT], env)
    assert returncode == 0, text
    assert "VirNucPro workers" in text
    assert "tokens/s" in text and "gpu-0" in text
    assert "\x1b[" in text  # it drew with terminal control codes, i.e. it was live


def test_off_terminal_logs_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="virnucpro.monitoring.live_dashboard")
    now = [0.0]
    console = Console(file=io.StringIO(), force_terminal=False)
    with Dashboard(console=console, log_interval=5.0, clock=lambda: now[0]) as dashboard:
        assert not dashboard.live
        for second in range(12):  # updates every second for 12 s: logs at 0, 5 and 10 s
            now[0] = float(second)
            dashboard.update(STATE)
    lines = [
        r.getMessage() for r in caplog.records if r.name == "virnucpro.monitoring.live_dashboard"
    ]
    assert len(lines) == 4  # three timed lines plus the final state on exit
    assert lines[0] == summary_line(STATE)
    assert lines[0] == (
        "groups 12/40, 41,234 tokens/s | worker gpu-0: 87% 41,234 tok/s, done 12; "
        "worker gpu-1: 0 tok/s, done 0"
    )
    assert console.file.getvalue() == ""  # nothing drawn off a terminal
