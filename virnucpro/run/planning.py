"""Planning work units: all kept frames, bin-packed into groups of similar token count.

The number of groups follows the work, never the cluster: about one per `group_tokens`
ESM-2 tokens and at least `MIN_GROUPS`, so the same frames give the same groups on 1
GPU or 8 and a rerun on another cluster reuses every finished group. Several groups per
GPU let Dask's work stealing move queued groups to a GPU that runs ahead. Groups are
balanced by longest-processing-time-first packing on ESM-2 tokens (ESM-2 3B is ~80% of
the compute), and each group is a Parquet file of `frame_id, nucleotide, protein`, so a
task receives a path, never the data. A group's id hashes its frames, so a changed
input or chunk length never matches an old group; which models scored a group is the
results' key (`run.fingerprint`).
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from Bio.SeqIO.FastaIO import SimpleFastaParser

from virnucpro.atomic_write import write_parquet
from virnucpro.errors import FeatureError
from virnucpro.reads.preparation import PreparedFiles

# Enough groups for work stealing to even out a few GPUs even on a small input.
MIN_GROUPS = 8

GROUP_SCHEMA = pa.schema(
    [("frame_id", pa.string()), ("nucleotide", pa.string()), ("protein", pa.string())]
)


@dataclass(frozen=True)
class Group:
    """One work unit: a file of frames, and its size for scheduling and telemetry."""

    group_id: str
    path: Path
    frames: int
    tokens: int  # ESM-2 tokens (residues + BOS/EOS)


@dataclass(frozen=True)
class Frames:
    """All kept frames of a run, in input order."""

    ids: list[str]
    nucleotides: list[str]
    proteins: list[str]


def read_frames(prepared: Sequence[PreparedFiles]) -> Frames:
    """Kept frames of every prepared input, paired by id (never by position)."""
    ids: list[str] = []
    nucleotides: list[str] = []
    proteins: list[str] = []
    for files in prepared:
        with open(files.protein) as handle:
            protein = dict(SimpleFastaParser(handle))
        with open(files.nucleotide) as handle:
            for frame_id, nucleotide in SimpleFastaParser(handle):
                if frame_id not in protein:
                    raise FeatureError(f"{files.protein}: frame {frame_id} has no protein record")
                ids.append(frame_id)
                nucleotides.append(nucleotide)
                proteins.append(protein.pop(frame_id))
        if protein:
            raise FeatureError(
                f"{files.nucleotide}: {len(protein)} frame(s) have no nucleotide record, "
                f"e.g. {next(iter(protein))}"
            )
    if len(set(ids)) != len(ids):
        raise FeatureError("frame ids repeat across inputs: read ids must be unique across files")
    return Frames(ids, nucleotides, proteins)


def pack_groups(costs: np.ndarray, n_groups: int) -> list[np.ndarray]:
    """Longest-processing-time-first: each item, largest first, to the lightest group.

    Returns index arrays (sorted, so a group keeps input order); empty groups are
    dropped. LPT is within 4/3 of the optimal makespan.
    """
    n_groups = max(1, min(n_groups, len(costs)))
    loads = [(0, g) for g in range(n_groups)]
    members: list[list[int]] = [[] for _ in range(n_groups)]
    for index in np.argsort(-costs, kind="stable").tolist():
        load, g = heapq.heappop(loads)
        members[g].append(index)
        heapq.heappush(loads, (load + int(costs[index]), g))
    return [np.sort(np.array(m, dtype=np.int64)) for m in members if m]


def group_count(total_tokens: int, group_tokens: int) -> int:
    """How many groups a run's frames make: from the work alone, never the cluster."""
    return max(MIN_GROUPS, math.ceil(total_tokens / group_tokens))


def plan_groups(frames: Frames, group_tokens: int, group_dir: Path) -> list[Group]:
    """Pack frames into groups of about `group_tokens` ESM-2 tokens; write each group
    file unless an intact one is there already (a damaged or partial one is rewritten)."""
    group_dir.mkdir(parents=True, exist_ok=True)
    costs = np.fromiter((len(p) + 2 for p in frames.proteins), np.int64, len(frames.proteins))
    groups = []
    for members in pack_groups(costs, group_count(int(costs.sum()), group_tokens)):
        ids = [frames.ids[i] for i in members]
        nucleotides = [frames.nucleotides[i] for i in members]
        proteins = [frames.proteins[i] for i in members]
        digest = hashlib.sha256()
        for values in (ids, nucleotides, proteins):
            digest.update("\n".join(values).encode())
        group_id = f"g{len(groups):04d}-{digest.hexdigest()[:12]}"
        group = Group(
            group_id, group_dir / f"{group_id}.parquet", len(ids), int(costs[members].sum())
        )
        if not _is_intact(group):
            table = pa.table([ids, nucleotides, proteins], schema=GROUP_SCHEMA)
            write_parquet(table, group.path)
        groups.append(group)
    return groups


def _is_intact(group: Group) -> bool:
    """A group file that reads back with the right schema and row count."""
    try:
        metadata = pq.read_metadata(group.path)
    except (OSError, pa.ArrowInvalid):
        return False
    return metadata.num_rows == group.frames and metadata.schema.to_arrow_schema() == GROUP_SCHEMA


def read_group(group: Group) -> pa.Table:
    """The frames of a group; a damaged file is an error naming it."""
    try:
        table = pq.read_table(group.path)
    except (OSError, pa.ArrowInvalid) as error:
        raise FeatureError(f"group {group.group_id}: cannot read {group.path}: {error}") from None
    if table.schema != GROUP_SCHEMA or table.num_rows != group.frames:
        raise FeatureError(
            f"group {group.group_id}: {group.path} holds {table.num_rows} rows of "
            f"{table.schema.names}, expected {group.frames} frames"
        )
    return table
