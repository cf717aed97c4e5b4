"""VirNucPro: find viral sequences in sequencing reads (library).

Data flows one way: reads → chunks → frames → batches → embeddings → predictions →
report. Every stage is importable and testable without Prefect or Dask.
"""

__version__ = "0.1.0"
