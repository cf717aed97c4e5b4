"""Planning work units: all kept frames, bin-packed into groups of similar token count.

Each GPU worker gets several groups (not one), so that when one GPU runs ahead Dask's
work stealing can move a queued group to it. Groups are balanced by
longest-processing-time-first packing on ESM-2 tokens (ESM-2 3B is ~80% of the
compute), and each group is a Parquet file of `frame_id, nucleotide, protein`, so a
task receives a path, never the data. A group's id hashes its frames and the run's
model fingerprint: rerunning with the same inputs and models finds the same groups
(and their finished results); a changed model or chunk length never matches.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from Bio.SeqIO.FastaIO import SimpleFastaParser

from virnucpro.atomic_write import write_parquet
from virnucpro.errors import FeatureError
from virnucpro.preparation import PreparedFiles

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


def plan_groups(frames: Frames, n_groups: int, group_dir: Path, fingerprint: str) -> list[Group]:
    """Pack frames into about `n_groups` groups and write each group file once."""
    group_dir.mkdir(parents=True, exist_ok=True)
    costs = np.fromiter((len(p) + 2 for p in frames.proteins), np.int64, len(frames.proteins))
    groups = []
    for members in pack_groups(costs, n_groups):
        ids = [frames.ids[i] for i in members]
        nucleotides = [frames.nucleotides[i] for i in members]
        proteins = [frames.proteins[i] for i in members]
        digest = hashlib.sha256(fingerprint.encode())
        for values in (ids, nucleotides, proteins):
            digest.update("\n".join(values).encode())
        group_id = f"g{len(groups):04d}-{digest.hexdigest()[:12]}"
        path = group_dir / f"{group_id}.parquet"
        if not path.exists():
            table = pa.table([ids, nucleotides, proteins], schema=GROUP_SCHEMA)
            write_parquet(table, path)
        groups.append(Group(group_id, path, len(ids), int(costs[members].sum())))
    return groups


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
