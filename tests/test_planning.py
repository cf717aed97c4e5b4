"""Planning groups: the same frames give the same groups whatever the cluster, groups
are balanced, and group files are written once and rewritten when damaged."""

from __future__ import annotations

import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from virnucpro.run.planning import (
    GROUP_SCHEMA,
    MIN_GROUPS,
    Frames,
    group_count,
    pack_groups,
    plan_groups,
    read_group,
)


def frames(n: int, seed: int = 0) -> Frames:
    rng = random.Random(seed)
    proteins = ["M" * rng.randint(1, 165) for _ in range(n)]
    return Frames(
        [f"r{i}_chunk_1F1" for i in range(n)],
        ["ACGT" * len(p) for p in proteins],
        proteins,
    )


def test_group_count_follows_the_work_never_the_cluster():
    assert group_count(10, 2_000_000) == MIN_GROUPS
    assert group_count(2_000_000 * MIN_GROUPS, 2_000_000) == MIN_GROUPS
    assert group_count(2_000_000 * 50 + 1, 2_000_000) == 51


def test_the_same_frames_plan_the_same_groups_in_another_directory(tmp_path):
    first = plan_groups(frames(500), 5_000, tmp_path / "a")
    again = plan_groups(frames(500), 5_000, tmp_path / "b")
    assert [g.group_id for g in first] == [g.group_id for g in again]
    assert [g.path.read_bytes() for g in first] == [g.path.read_bytes() for g in again]


def test_groups_hold_every_frame_once_in_input_order_and_are_balanced(tmp_path):
    planned = frames(500)
    groups = plan_groups(planned, 5_000, tmp_path)
    tokens = sum(len(p) + 2 for p in planned.proteins)
    assert len(groups) == group_count(tokens, 5_000) > MIN_GROUPS
    ids = [i for g in groups for i in read_group(g).column("frame_id").to_pylist()]
    assert sorted(ids) == sorted(planned.ids) and len(ids) == len(set(ids))
    for group in groups:
        members = read_group(group).column("frame_id").to_pylist()
        assert members == sorted(members, key=planned.ids.index)
    loads = [g.tokens for g in groups]
    assert sum(loads) == tokens
    # LPT: no group exceeds the ideal share by more than the largest item.
    assert max(loads) <= tokens / len(groups) + max(len(p) + 2 for p in planned.proteins)


def test_changed_frames_change_the_group_ids(tmp_path):
    planned = frames(100)
    before = {g.group_id for g in plan_groups(planned, 10**9, tmp_path)}
    planned.proteins[0] = planned.proteins[0] + "K"
    after = {g.group_id for g in plan_groups(planned, 10**9, tmp_path)}
    assert before != after


@pytest.mark.parametrize("damage", ["truncated", "garbage", "other rows"])
def test_a_damaged_group_file_is_rewritten(tmp_path, damage):
    planned = frames(60)
    groups = plan_groups(planned, 10**9, tmp_path)
    victim = groups[3]
    good = victim.path.read_bytes()
    if damage == "truncated":
        victim.path.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        victim.path.write_bytes(b"not parquet")
    else:
        pq.write_table(read_group(groups[4]), victim.path)
    untouched = groups[5].path.stat().st_mtime_ns
    replanned = plan_groups(planned, 10**9, tmp_path)
    assert replanned == groups
    assert victim.path.read_bytes() == good
    assert read_group(victim).schema == GROUP_SCHEMA
    assert groups[5].path.stat().st_mtime_ns == untouched  # intact files are kept


def test_pack_groups_is_longest_processing_time_first():
    costs = np.array([7, 5, 4, 3, 3, 2])
    groups = pack_groups(costs, 3)
    # By hand: 7→A, 5→B, 4→C, 3→C (C=4 lightest), 3→B (B=5), 2→A (A=C=7, first wins).
    assert sorted(map(list, groups)) == [[0, 5], [1, 4], [2, 3]]
