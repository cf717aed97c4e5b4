import logging
import threading

import pynvml
import pytest
from helpers import FakeNvml

from virnucpro.monitoring.gpu_monitor import GpuMonitor, parse_visible_devices


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml()
    fake.install(monkeypatch)
    return fake


@pytest.fixture
def no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine without the NVML library, whatever this one has."""

    def missing() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)

    monkeypatch.setattr(pynvml, "nvmlInit", missing)


def test_no_nvml_returns_empty_with_one_debug_line(
    no_nvml: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="virnucpro.monitoring.gpu_monitor")
    monitor = GpuMonitor()
    assert monitor.sample() == []
    assert monitor.sample() == []
    assert monitor.available is False
    assert monitor.driver_info() is None
    records = [r for r in caplog.records if r.name == "virnucpro.monitoring.gpu_monitor"]
    assert len(records) == 1
    assert records[0].levelno == logging.DEBUG


def test_fake_gpus_report_values(fake_nvml: FakeNvml, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monitor = GpuMonitor(clock=lambda: 0.0)
    a100, v100 = monitor.sample()
    assert monitor.available
    assert (a100.index, a100.name, a100.utilisation_percent) == (0, "NVIDIA A100-SXM4-80GB", 55.0)
    assert a100.memory_used_bytes == 2**30 and a100.memory_total_bytes == 80 * 2**30
    assert a100.temperature_celsius == 40.0
    assert a100.power_watts == pytest.approx(250.5)
    assert a100.energy_millijoules == 123_456_789
    assert a100.supports_bf16 and a100.compute_capability == (8, 0)
    assert not v100.supports_bf16
    assert v100.energy_millijoules is None  # not supported there: None, not an error
    assert v100.memory_used_bytes == 2 * 2**30
    info = monitor.driver_info()
    assert info is not None
    assert (info.driver_version, info.cuda_driver_version) == ("550.54.15", "12.4")


def test_samples_are_cached_for_max_age(fake_nvml: FakeNvml) -> None:
    now = [100.0]
    monitor = GpuMonitor(max_age=1.0, visible_devices="0,1", clock=lambda: now[0])
    assert monitor.sample()[0].utilisation_percent == 55.0
    fake_nvml.utilisation[0] = 99
    now[0] = 100.9
    assert monitor.sample()[0].utilisation_percent == 55.0  # still cached
    assert fake_nvml.reads == 2  # one read per GPU so far
    now[0] = 101.0
    assert monitor.sample()[0].utilisation_percent == 99.0
    assert fake_nvml.reads == 4


def test_concurrent_sampling_is_safe(fake_nvml: FakeNvml) -> None:
    monitor = GpuMonitor(max_age=0.0, visible_devices="0,1")
    errors: list[BaseException] = []

    def hammer() -> None:
        try:
            for _ in range(200):
                samples = monitor.sample()
                assert [s.index for s in samples] == [0, 1]
        except BaseException as error:  # surfaced in the main thread below
            errors.append(error)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert fake_nvml.reads == 8 * 200 * 2


@pytest.mark.parametrize(
    ("visible", "expected_nvml", "expected_names"),
    [
        ("1", [1], ["Tesla V100-SXM2-32GB"]),
        ("1,0", [1, 0], ["Tesla V100-SXM2-32GB", "NVIDIA A100-SXM4-80GB"]),
        ("GPU-bbbb", [1], ["Tesla V100-SXM2-32GB"]),  # UUID prefixes are accepted
        ("0,7,1", [0], ["NVIDIA A100-SXM4-80GB"]),  # CUDA stops at the missing device 7
        ("", [], []),
    ],
)
def test_visible_devices_map_to_nvml_indices(
    fake_nvml: FakeNvml, visible: str, expected_nvml: list[int], expected_names: list[str]
) -> None:
    samples = GpuMonitor(visible_devices=visible).sample()
    assert [s.index for s in samples] == list(range(len(expected_nvml)))
    assert [s.nvml_index for s in samples] == expected_nvml
    assert [s.name for s in samples] == expected_names


def test_parse_visible_devices() -> None:
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("0, 2") == ["0", "2"]
    assert parse_visible_devices("0,-1,2") == ["0"]
    assert parse_visible_devices("GPU-ab12,1") == ["GPU-ab12", "1"]
