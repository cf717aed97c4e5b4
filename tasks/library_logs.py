"""The library's own log lines in the run's logs (terminal and Prefect UI).

`virnucpro` logs through `logging` and knows nothing of Prefect. In a run its lines
(models loaded, batches split after out-of-memory, sequences truncated, the live view's
summary off a terminal) belong with the flow's and tasks' own, but Python passes only
warnings by default and Prefect ships to its API only its own loggers' records. The
flow and each group task call `route_library_logs` in the process they run in.
"""

from __future__ import annotations

import logging

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

LIBRARY_LOGGER = "virnucpro"


def route_library_logs() -> None:
    """In this process (the flow's or a Dask worker's): let the library's INFO lines
    through to the console, and send them to the Prefect API, attributed to the flow or
    task run they are logged in. Idempotent; a user's PREFECT_LOGGING_EXTRA_LOGGERS
    naming `virnucpro` already attached the handler."""
    logger = logging.getLogger(LIBRARY_LOGGER)
    logger.setLevel(logging.INFO)
    if not any(isinstance(handler, APILogHandler) for handler in logger.handlers):
        handler = APILogHandler()
        handler.addFilter(_in_a_run)
        logger.addHandler(handler)


def _in_a_run(record: logging.LogRecord) -> bool:
    """Only lines logged inside a flow or task run go to the API (the library also logs
    outside runs: a worker's start-up, a notebook after a run); the console has them all."""
    return FlowRunContext.get() is not None or TaskRunContext.get() is not None
