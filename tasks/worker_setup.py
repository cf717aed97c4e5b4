"""A Dask preload for the local cluster's worker processes (`tasks.cluster.task_runner`),
so that stopping a run (Ctrl-C, SIGTERM) takes seconds and prints nothing but the
flow's own summary.

- Each worker leaves the flow's session: a Ctrl-C at the terminal or a SIGTERM to the
  run's process group reaches only the flow process, which closes the cluster in order,
  instead of every worker dying mid-group with a traceback.
- A worker closed while a group is still running is being abandoned (the flow stopped
  waiting for it): it exits at once instead of finishing the group (minutes on a GPU)
  or being killed by its nanny after 4 s with a warning. Results are written whole or
  not at all, so a rerun computes that group again. Dask's own warning about the
  cancelled group is dropped: the flow's summary reports what is kept.

A worker also exits at once if the flow process dies (distributed's parent-alive pipe).
"""

from __future__ import annotations

import logging
import os

from distributed import Worker

from tasks.library_logs import SIZEOF_LOGGER

# Worker.close cancels the coroutine waiting for a running task and says so.
_CANCELLED_TASK_LOGGER = "distributed.worker.state_machine"
_CANCELLED_TASK_MESSAGE = "ended with CancelledError"


def dask_setup(worker: Worker) -> None:
    os.setsid()
    logging.getLogger(_CANCELLED_TASK_LOGGER).addFilter(
        lambda record: _CANCELLED_TASK_MESSAGE not in record.getMessage()
    )
    logging.getLogger(SIZEOF_LOGGER).setLevel(logging.ERROR)


def dask_teardown(worker: Worker) -> None:
    if worker.active_threads:  # a group still running
        os._exit(0)
