"""The library's log lines: INFO through, and to the Prefect API only inside a run."""

import logging
import subprocess
import sys
import warnings

from prefect import flow
from prefect.logging.handlers import APILogHandler
from prefect.testing.utilities import prefect_test_harness

from tasks.library_logs import LIBRARY_LOGGER, UserErrorReports, route_library_logs
from virnucpro.errors import InputError


def test_routing_is_idempotent_and_lets_info_through():
    route_library_logs()
    route_library_logs()
    logger = logging.getLogger(LIBRARY_LOGGER)
    assert logger.level == logging.INFO
    assert sum(isinstance(h, APILogHandler) for h in logger.handlers) == 1


def test_lines_outside_a_run_stay_off_the_api_without_warnings(caplog):
    route_library_logs()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # Prefect warns when a line has no run to go to
        logging.getLogger(f"{LIBRARY_LOGGER}.somewhere").info("outside any run")
    assert [str(w.message) for w in caught] == []
    assert "outside any run" in caplog.text  # still on the console


def test_lines_inside_a_run_pass_the_api_filter():
    route_library_logs()
    handler = next(
        h for h in logging.getLogger(LIBRARY_LOGGER).handlers if isinstance(h, APILogHandler)
    )
    record = logging.LogRecord(LIBRARY_LOGGER, logging.INFO, __file__, 1, "x", None, None)

    @flow
    def probe() -> bool:
        return handler.filter(record)

    assert not handler.filter(record)
    with prefect_test_harness():
        assert probe()


def test_the_console_keeps_the_runs_lines_and_hides_the_machinerys():
    """In a process of its own: quiet_console changes this process's logging for good."""
    probe = """
import logging, os
from tasks.library_logs import quiet_console
quiet_console()
level = lambda name: logging.getLevelName(logging.getLogger(name).getEffectiveLevel())
print(level("distributed.scheduler"), level("prefect.task_runner.dask"),
      level("prefect.flow_runs"), level("prefect.task_runs"), level("distributed.sizeof"),
      os.environ["DASK_LOGGING__DISTRIBUTED"], os.environ["HF_HUB_DISABLE_PROGRESS_BARS"])
"""
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["WARNING", "WARNING", "INFO", "INFO", "ERROR", "warning", "1"]


def record(message: str, error: BaseException | None = None) -> logging.LogRecord:
    exc_info = (type(error), error, None) if error else None
    return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, message, (), exc_info)


def test_prefects_reports_of_a_user_error_stay_off_the_console():
    error = InputError("reads.fa: record 3 (r3): character 'X' at position 5 is not ...")
    console = UserErrorReports()

    assert not console.filter(record(f"Task run failed with exception: {error!r}", error))
    assert not console.filter(record(f"Finished in state Failed('InputError: {error}')"))
    assert console.filter(record("group g0001 failed: CUDA out of memory"))
    bug = ValueError("a bug: its traceback is shown")
    assert console.filter(record("Encountered exception during execution", bug))
