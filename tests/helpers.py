"""Test helpers shared by several test modules."""

from __future__ import annotations

import os
import select
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from distributed import Client, LocalCluster

from tasks.worker_telemetry import WorkerTelemetryPlugin


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, str]:
    """Run a command attached to a pseudo-terminal; its exit code and all it printed."""
    import pty

    main, child = pty.openpty()
    process = subprocess.Popen(
        args, stdin=child, stdout=child, stderr=child, env=env, cwd=Path(__file__).parents[1]
    )
    os.close(child)
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the pty
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(main)
    return process.wait(timeout=10), output.decode(errors="replace")


@contextmanager
def telemetry_cluster(out_dir: Path) -> Iterator[tuple[LocalCluster, Client]]:
    """A one-worker process cluster with our telemetry plugin, dashboards on free ports."""
    with (
        LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",
            worker_dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(WorkerTelemetryPlugin(out_dir))
        yield cluster, client


def scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def ledger_rows(path: Path) -> list:
    """The rows of a ledger file as `LedgerRow`s, through the library's one parser."""
    from virnucpro.reads.ledger import LedgerRow, read_ledger_table

    table = read_ledger_table(path)
    return [LedgerRow(*row) for row in table.itertuples(index=False, name=None)]


def cosine_rows(a, b):
    """Cosine similarity of each row of `a` with the same row of `b`."""
    import numpy as np

    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
