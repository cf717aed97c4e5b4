"""A live view of the run in the terminal, or periodic log lines when there is none.

On a TTY the flow shows a rich `Live` table (one row per GPU worker) and the latest
events, redrawn in place every `interval` seconds so it does not flicker. Off a TTY
(batch jobs, log files, Prefect workers) redrawing makes no sense, so the same state
is summarised in one `logging.info` line at most every `log_interval` seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from virnucpro.monitoring.telemetry import RunEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerStatus:
    """One row of the dashboard: a worker and the GPU it drives."""

    worker: str
    gpu: int | None = None
    utilisation_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    tokens_per_second: float = 0.0
    groups_queued: int = 0
    groups_done: int = 0
    stolen: int = 0


@dataclass(frozen=True)
class DashboardState:
    workers: list[WorkerStatus] = field(default_factory=list)
    events: list[RunEvent] = field(default_factory=list)
    done: int = 0
    total: int = 0


def _memory(worker: WorkerStatus) -> str:
    if worker.memory_used_bytes is None:
        return "-"
    used = worker.memory_used_bytes / 2**30
    if worker.memory_total_bytes is None:
        return f"{used:.1f} GiB"
    return f"{used:.1f}/{worker.memory_total_bytes / 2**30:.0f} GiB"


COLUMNS = ("worker", "GPU", "util %", "memory", "tokens/s", "queued", "done", "stolen")


def worker_cells(w: WorkerStatus) -> tuple[str, ...]:
    """One worker's row as text, in `COLUMNS` order (every view shows the same cells)."""
    return (
        w.worker,
        "cpu" if w.gpu is None else str(w.gpu),
        "-" if w.utilisation_percent is None else f"{w.utilisation_percent:.0f}",
        _memory(w),
        f"{w.tokens_per_second:,.0f}",
        str(w.groups_queued),
        str(w.groups_done),
        str(w.stolen),
    )


def event_lines(state: DashboardState, max_events: int = 8) -> list[str]:
    return [
        f"{time.strftime('%H:%M:%S', time.localtime(e.time))} {e.kind:<9} {e.worker} {e.detail}"
        for e in state.events[-max_events:]
    ]


def render(state: DashboardState, max_events: int = 8) -> Group:
    """The dashboard as a rich renderable: worker table, progress line, event panel."""
    table = Table(title="VirNucPro workers", expand=True)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column == "worker" else "right")
    for w in state.workers:
        table.add_row(*worker_cells(w))
    events = "\n".join(event_lines(state, max_events))
    return Group(
        table,
        f"groups {state.done}/{state.total}",
        Panel(events or "no events yet", title="recent events"),
    )


def summary_line(state: DashboardState) -> str:
    """The state in one log line, for runs without a terminal."""
    tokens = sum(w.tokens_per_second for w in state.workers)
    workers = "; ".join(
        f"worker {w.worker}:"
        + ("" if w.utilisation_percent is None else f" {w.utilisation_percent:.0f}%")
        + f" {w.tokens_per_second:,.0f} tok/s, done {w.groups_done}"
        for w in state.workers
    )
    return f"groups {state.done}/{state.total}, {tokens:,.0f} tokens/s | {workers}"


class Dashboard:
    """`with Dashboard() as dash: dash.update(state)`; live on a TTY, log lines elsewhere."""

    def __init__(
        self,
        console: Console | None = None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        log_interval: float = 30.0,
    ) -> None:
        """`interval`: seconds between redraws on a terminal; `log_interval`: between
        log lines off one (a multi-hour run should not log every two seconds)."""
        self.console = console or Console()
        self.interval = interval
        self.log_interval = log_interval
        self._clock = clock
        self._live: Live | None = None
        self._last_log: float | None = None
        self._state = DashboardState()

    @property
    def live(self) -> bool:
        return self.console.is_terminal

    def __enter__(self) -> Dashboard:
        if self.live:
            self._live = Live(
                render(self._state),
                console=self.console,
                auto_refresh=True,
                refresh_per_second=1 / self.interval,
                transient=False,
            )
            self._live.start()
        return self

    def update(self, state: DashboardState) -> None:
        """Show `state`; cheap to call often (the screen or log is refreshed on a timer)."""
        self._state = state
        if self._live is not None:
            self._live.update(render(state))
            return
        now = self._clock()
        if self._last_log is None or now - self._last_log >= self.log_interval:
            self._last_log = now
            logger.info("%s", summary_line(state))

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(render(self._state))
            self._live.stop()
            self._live = None
        else:
            # Always end with the final state, even if the last update was rate-limited.
            logger.info("%s", summary_line(self._state))
