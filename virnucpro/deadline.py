"""Waiting with a bound: a call to something outside this process (the network, a Dask
cluster) either answers within its deadline or the caller gets a `TimeoutError` it can
turn into a message, never a silent hang. The call runs in a daemon thread, so one that
never answers cannot keep the process alive."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def call_with_deadline(call: Callable[[], T], seconds: float | None, what: str) -> T:
    """`call()`'s result or exception; `TimeoutError` naming `what` after `seconds`
    (None: wait as long as the call runs)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name=what, daemon=True)
    thread.start()
    thread.join(seconds)
    if "value" in outcome:
        return outcome["value"]
    if "error" in outcome:
        raise outcome["error"]
    raise TimeoutError(f"{what}: no answer in {seconds:.0f} s")
