"""The report's figures draw exactly what the telemetry file says: rendered from a
telemetry.json written for `helpers.fixed_run` (stage 100 s → 115 s), values read back
from the drawn lines and bars and compared with the run's timeline worked out by hand."""

import json

import pytest
from helpers import fixed_run

from virnucpro.monitoring.plots import figures, png_data_uri, svg
from virnucpro.monitoring.report import RunInfo, build_report
from virnucpro.monitoring.report_files import write_report
from virnucpro.monitoring.run_telemetry import RunRecords

GIB = 2**30


@pytest.fixture(scope="module")
def drawn(tmp_path_factory):
    workers, summaries = fixed_run()
    report = build_report(RunRecords.combine(workers, summaries), RunInfo("r", "s", 2, 20))
    written = write_report(tmp_path_factory.mktemp("report"), report)
    records = RunRecords.from_dict(json.loads(written.telemetry.read_text())["records"])
    return figures(records)


def lines(figure, axis: int = 0) -> dict[str, tuple[list[float], list[float]]]:
    ax = figure.axes[axis]
    return {
        line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
        for line in ax.get_lines()
    }


def test_throughput_over_time(drawn):
    drawn_lines = lines(drawn["throughput"])
    # ESM-2: g1 103–107 s, g3 106–112 s, g2 109–114 s, each at 2000 tokens/s.
    assert drawn_lines["ESM-2 (while it runs)"] == (
        [3.0, 6.0, 7.0, 9.0, 12.0, 14.0],
        [2000.0, 4000.0, 2000.0, 4000.0, 2000.0, 0.0],
    )
    # DNABERT-S: g1 102–103 s at 3000/s, g3 104–106 s at 2000/s, g2 108–109 s at 3000/s.
    assert drawn_lines["DNABERT-S (while it runs)"] == (
        [2.0, 3.0, 4.0, 6.0, 8.0, 9.0],
        [3000.0, 0.0, 2000.0, 0.0, 3000.0, 0.0],
    )
    assert drawn_lines["run throughput (ESM-2)"][1] == [2000.0, 2000.0]  # 30 000 / 15 s


def test_gpu_utilisation_and_memory_per_gpu(drawn):
    utilisation, memory = lines(drawn["gpus"], 0), lines(drawn["gpus"], 1)
    assert utilisation["w0 (GPU 0)"] == ([0.0, 5.0, 15.0], [50.0, 100.0, 100.0])
    assert utilisation["w1 (GPU 1)"] == ([-1.0, 4.0, 15.0], [0.0, 90.0, 90.0])
    assert [y for _, y in memory.values()] == [[10.0, 20.0, 20.0], [5.0, 30.0, 30.0]]


def bars(figure) -> list[tuple[float, float, float]]:
    """(row, left, width) of every bar drawn."""
    return [
        (round(p.get_y() + p.get_height() / 2, 6), p.get_x(), p.get_width())
        for p in figure.axes[0].patches
    ]


def test_timeline_of_groups_per_worker(drawn):
    w1, w0 = 1.0, 0.0  # rows by worker name: w0 below, w1 above
    assert bars(drawn["timeline"]) == [
        (w0, 0.0, 2.0), (w0, 2.0, 1.0), (w0, 3.0, 4.0), (w0, 7.0, 1.0),  # g1 at 100 s
        (w0, 8.0, 0.0), (w0, 8.0, 1.0), (w0, 9.0, 5.0), (w0, 14.0, 1.0),  # g2 at 108 s
        (w1, 1.0, 3.0), (w1, 4.0, 2.0), (w1, 6.0, 6.0), (w1, 12.0, 1.0),  # g3 at 101 s
    ]  # fmt: skip


def test_load_balance(drawn):
    figure = drawn["balance"]
    # Phases stacked per worker: waiting, DNABERT-S, ESM-2, classify/write.
    assert [(row, width) for row, _, width in bars(figure)] == [
        (0.0, 2.0), (1.0, 3.0), (0.0, 2.0), (1.0, 2.0),
        (0.0, 9.0), (1.0, 6.0), (0.0, 2.0), (1.0, 1.0),
    ]  # fmt: skip
    (stage,) = [line for line in figure.axes[0].get_lines() if line.get_label() == "GPU stage"]
    assert list(stage.get_xdata()) == [15.0, 15.0]


def test_figures_render_as_svg_and_png():
    empty = figures(RunRecords())
    assert svg(empty["throughput"]).startswith("<svg")
    assert png_data_uri(empty["timeline"]).startswith("data:image/png;base64,iVBOR")
