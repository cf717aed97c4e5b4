"""Watching a run: NVML samples, per-batch telemetry, the live view, Prometheus gauges,
projections and the performance report. No Dask or Prefect here (see `tasks/`)."""
