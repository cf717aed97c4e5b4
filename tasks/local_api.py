"""One Prefect API for a run: the configured one, or a temporary one started for it.

With no `PREFECT_API_URL` configured, Prefect would start a temporary server in the
flow's process and another in every Dask worker, each with its own database, so task
runs would not show up together. `prefect_api` starts one and exports its URL, so the
workers (started later, inheriting the environment) report to it too.

The server must outlive the run's end: while a stopped or failed run unwinds, Prefect
reports the runs' final states and last logs to it, and a dead API turns each report
into minutes of connection retries. So the server runs in its own session, out of reach
of a Ctrl-C or a SIGTERM sent to the run's process group, and is stopped last, after
Prefect's queued logs and events are handed over. On Linux it also gets a SIGTERM when
the flow process dies, so a killed run leaves no server behind.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

log = logging.getLogger(__name__)

# Seconds Prefect may take to hand its queued logs and events to the API at the end.
DRAIN_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@contextmanager
def prefect_api() -> Iterator[None]:
    """Inside: a Prefect API for this process and the workers it starts (see above)."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import PREFECT_API_URL, temporary_settings

    if PREFECT_API_URL.value():
        yield
        return
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    server = SubprocessASGIServer()
    # Prefect's server offers no way to pass Popen options: its one Popen call gets
    # them from this subclass while it starts.
    with mock.patch.object(subprocess, "Popen", _ServerPopen):
        server.start()
    os.environ["PREFECT_API_URL"] = server.api_url
    log.info("started a local Prefect API for this run at %s", server.api_url)
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield
    finally:
        _drain_to_api()
        server.stop()


def _drain_to_api() -> None:
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for service in (APILogWorker, EventsWorker):
        service.drain_all(timeout=DRAIN_SECONDS)


class _ServerPopen(subprocess.Popen):
    """The server's process: its own session, and stopped when its parent dies."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        own = {"start_new_session": True, "preexec_fn": _parent_death_signal()}
        super().__init__(*args, **{**kwargs, **own})


def _parent_death_signal() -> Any:
    """A pre-exec call asking Linux for a SIGTERM when the parent dies (None elsewhere).
    The C function is looked up here, before the fork: the child only calls it."""
    prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None)
    if prctl is None:
        return None
    return lambda: prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
