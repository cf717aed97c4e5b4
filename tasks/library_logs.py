"""The library's own log lines in the run's logs (terminal and Prefect UI).

`virnucpro` logs through `logging` and knows nothing of Prefect. In a run its lines
(models loaded, batches split after out-of-memory, sequences truncated, the live view's
summary off a terminal) belong with the flow's and tasks' own, but Python passes only
warnings by default and Prefect ships to its API only its own loggers' records. The
flow and each group task call `route_library_logs` in the process they run in.

The command line's console is kept for what a user acts on (`quiet_console`, undone by
`--verbose`): Dask's and Prefect's own INFO lines (cluster start-up, connections, the
temporary server) and the model loaders' progress bars describe machinery, not the
run; and an error the user can fix (a `VirNucProError`: a bad record, say) is printed
once by the command, not also by Prefect for the task and the flow, with tracebacks.
"""

from __future__ import annotations

import logging
import os

from prefect.context import FlowRunContext, TaskRunContext
from prefect.logging.handlers import APILogHandler

from virnucpro.errors import VirNucProError

LIBRARY_LOGGER = "virnucpro"
# Loggers of the machinery under the run, and those of the run's own lines.
INTERNAL_LOGGERS = ("distributed", "prefect")
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")
# Warns when it cannot size a message and only means the message is serialized in a
# thread: the Dask performance report's profile (a tree as deep as the stacks sampled)
# triggers it at the end of every run.
SIZEOF_LOGGER = "distributed.sizeof"


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


def quiet_console() -> None:
    """Dask's and Prefect's internals at WARNING, the flow's and tasks' lines at INFO,
    no progress bars from model loading: in this process, and in Dask worker processes
    started later through the environment they inherit (distributed and
    huggingface_hub read it when imported). Prefect's reports of a user error stay off
    this process's console (the run's logs in the API keep them)."""
    os.environ["DASK_LOGGING__DISTRIBUTED"] = "warning"
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    for name in INTERNAL_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in RUN_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)
    logging.getLogger(SIZEOF_LOGGER).setLevel(logging.ERROR)
    for handler in logging.getLogger().handlers:  # Prefect's console handler
        if isinstance(handler, logging.StreamHandler):
            handler.addFilter(UserErrorReports())


class UserErrorReports(logging.Filter):
    """Drops Prefect's reports of a `VirNucProError`: the records carrying it (a task's
    and a flow's failure, with tracebacks) and those repeating its message ("Finished
    in state Failed(...)"). The command prints the error itself, as one line."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, VirNucProError):
            self.messages.add(str(error))
            return False
        message = record.getMessage()
        return not any(text in message for text in self.messages)
