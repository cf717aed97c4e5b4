"""The library's log lines: INFO through, and to the Prefect API only inside a run."""

import logging
import warnings

from prefect import flow
from prefect.logging.handlers import APILogHandler
from prefect.testing.utilities import prefect_test_harness

from tasks.library_logs import LIBRARY_LOGGER, route_library_logs


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
