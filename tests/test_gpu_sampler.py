"""The per-worker GPU sampler and the time-weighted utilisation the report uses."""

import threading

import pytest
from helpers import FakeNvml

from virnucpro.monitoring.gpu_monitor import GpuMonitor
from virnucpro.monitoring.gpu_sampler import GpuReading, GpuSampler, time_weighted_mean


@pytest.fixture
def fake_nvml(monkeypatch: pytest.MonkeyPatch) -> FakeNvml:
    fake = FakeNvml()
    fake.install(monkeypatch)
    return fake


def test_sampler_follows_its_own_gpu_and_averages_over_the_stage(
    fake_nvml: FakeNvml,
) -> None:
    """A fake NVML plays a known timeline, read once a (fake) second on visible GPU 1:
    0% for 10 s, 100% for 10 s, then 40%. Over the stage 5 s → 25 s that is
    (5 × 0 + 10 × 100 + 5 × 40) / 20 = 60%; GPU 0 (another worker's) stays at 99%."""
    now = [0.0]
    monitor = GpuMonitor(max_age=0.0, visible_devices="0,1")
    sampler = GpuSampler(monitor, gpu_index=1, clock=lambda: now[0])
    fake_nvml.utilisation[0] = 99
    for second in range(30):
        now[0] = float(second)
        fake_nvml.utilisation[1] = 0 if second < 10 else 100 if second < 20 else 40
        sampler.tick()
    readings = sampler.readings()
    assert len(readings) == 30 and {r.gpu for r in readings} == {1}
    assert readings[12] == GpuReading(12.0, 1, 100.0, 2 * 2**30, 80 * 2**30, 250.5, 41.0)
    assert time_weighted_mean(readings, 5.0, 25.0) == pytest.approx(60.0)
    assert time_weighted_mean(readings, 0.0, 30.0) == pytest.approx((1000 + 400) / 30)
    assert time_weighted_mean(readings, 40.0, 50.0) == 40.0  # the last reading holds
    assert time_weighted_mean([], 0.0, 1.0) is None
    assert sampler.latest() == readings[-1]


def test_uneven_readings_are_weighted_by_how_long_they_held() -> None:
    readings = [GpuReading(t, 0, u, 0, 1, None, None) for t, u in ((10, 20.0), (11, 80.0))]
    # 20% holds 1 s, 80% holds 9 s until the end; time before the first reading is unknown.
    assert time_weighted_mean(readings, 0.0, 20.0) == pytest.approx((20 + 9 * 80) / 10)


def test_thread_starts_only_with_a_gpu_and_stops_releasing_nvml(fake_nvml: FakeNvml) -> None:
    sampler = GpuSampler(GpuMonitor(visible_devices="0"), interval=0.01)
    assert sampler.start()
    sampler.stop()
    assert "virnucpro-gpu-sampler" not in {t.name for t in threading.enumerate()}
    assert fake_nvml.shutdowns == 1
    assert {r.gpu for r in sampler.readings()} <= {0}


def test_without_a_visible_gpu_nothing_starts(fake_nvml: FakeNvml) -> None:
    sampler = GpuSampler(GpuMonitor(visible_devices=""))
    assert not sampler.start()
    assert sampler.tick() is None and sampler.readings() == []
    sampler.stop()
