"""Protein sequences → ESM-2 embeddings (SPEC §3): tokenise, pack, run, pool.

Each call tokenises all sequences at once with a 256-entry byte lookup table, groups
them longest-first into steps of at most `max_tokens` packed tokens, runs
`virnucpro.models.esm_model.Esm2` on each step and mean-pools on the device. Row i of the
result always belongs to `sequences[i]` (rows are placed by position, never by id or
content, so duplicates cannot be mixed up).

Input rules (the original tool only fed stop-free frames, so these cover user input):
- Letters are upper-cased. The 25 letters of the ESM alphabet (20 standard amino acids
  and X, B, U, Z, O) map to their tokens; `-` and `.` are alphabet tokens too and are
  kept, as fair-esm keeps them.
- Trailing `*` (stop codons) are removed. An internal `*`, and `J` (the only letter
  the ESM alphabet lacks), become `X` (unknown residue).
- Anything else (digits, whitespace, other symbols, non-ASCII) is an `InputError`
  naming the sequence index and position. An empty sequence (after removing the
  trailing stops) is an `InputError` too: its mean would be undefined.
- Sequences longer than 1022 residues are truncated to their first 1022 residues, as
  fair-esm's `BatchConverter(truncation_seq_length=1022)` does, so BOS + residues + EOS
  fits the model's 1024 trained positions. The embedding is the mean over those
  residues, i.e. over positions 1 … min(len, 1022) (BOS and EOS excluded); SPEC's bound
  min(len, 1024) never binds after truncation. Truncations are logged once per call.

Speed tricks, each in one place: packing without padding (`pack_batch`), one
dynamic-shape `torch.compile` graph fed aligned sizes (`pad_tokens_to`), the attention
backend (`esm_model`), pooling by `index_add_` on the device with one non-blocking
copy per step, and a step size fitted to the GPU's memory (`ESM_BUDGET`, `budget`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import numpy as np
import torch

from virnucpro.errors import InputError
from virnucpro.models.batching import (
    EmbedStats,
    is_out_of_memory,
    run_splitting_on_oom,
    token_budget_batches,
)
from virnucpro.models.budget import BudgetChoice, BudgetSearch, choose_token_budget
from virnucpro.models.device import Precision, resolve_device, resolve_dtype
from virnucpro.models.esm_checkpoint import load_esm2
from virnucpro.models.esm_model import (
    ALPHABET,
    CLS_IDX,
    EOS_IDX,
    MAX_RESIDUES,
    PAD_IDX,
    UNKNOWN_RESIDUE_IDX,
    Esm2,
)

log = logging.getLogger(__name__)

_INVALID = -1

# `auto` steps: 4,096 tokens on the CPU; on a GPU the probe starts at 16,384 (the old
# fixed default) and may go down to 1,024 (one longest sequence) or up to 16× the start.
ESM_BUDGET = BudgetSearch("ESM-2", cpu_default=4096, start=16384, floor=1024, cap=262144)
# Probe proteins cycle through these lengths: longer than the frames of 300/500-nt
# chunks (at most 166 residues), so the probe errs on the side of memory.
PROBE_RESIDUES = (500, 400, 300, 200, 100)


def _build_lookup() -> np.ndarray:
    """ASCII byte → ESM token id; `_INVALID` for bytes that are not residues."""
    table = np.full(256, _INVALID, dtype=np.int16)
    for token_id, token in enumerate(ALPHABET):
        if len(token) == 1:
            table[ord(token)] = token_id
            table[ord(token.lower())] = token_id
    for unknown in "*Jj":
        table[ord(unknown)] = UNKNOWN_RESIDUE_IDX
    return table


RESIDUE_LOOKUP = _build_lookup()


@dataclass(frozen=True)
class EncodedProteins:
    """All residues of a call as token ids, end to end; sequence i is
    `residues[offsets[i]:offsets[i + 1]]` (already truncated to `MAX_RESIDUES`)."""

    residues: np.ndarray  # uint8 [total residues] (33 token ids fit a byte)
    offsets: np.ndarray  # int64 [n + 1]
    truncated: int  # how many sequences were cut to MAX_RESIDUES

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def encode_proteins(sequences: Sequence[str]) -> EncodedProteins:
    """Tokenise protein strings by byte lookup (see the module docstring for the rules)."""
    stripped = [sequence.rstrip("*") for sequence in sequences]
    full_lengths = np.fromiter(map(len, stripped), dtype=np.int64, count=len(stripped))
    full_offsets = np.concatenate(([0], np.cumsum(full_lengths)))
    if (empty := np.flatnonzero(full_lengths == 0)).size:
        raise InputError(f"protein sequence {int(empty[0])} is empty (after removing stops)")

    text = "".join(stripped)
    try:
        data = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    except UnicodeEncodeError as error:
        _raise_invalid(full_offsets, error.start, text[error.start])
    ids = RESIDUE_LOOKUP[data]
    if (bad := np.flatnonzero(ids == _INVALID)).size:
        _raise_invalid(full_offsets, int(bad[0]), text[bad[0]])

    lengths = np.minimum(full_lengths, MAX_RESIDUES)
    offsets = np.concatenate(([0], np.cumsum(lengths)))
    within = np.arange(offsets[-1]) - np.repeat(offsets[:-1], lengths)
    keep = np.repeat(full_offsets[:-1], lengths) + within
    truncated = int((full_lengths > MAX_RESIDUES).sum())
    return EncodedProteins(ids[keep].astype(np.uint8), offsets, truncated)


def _raise_invalid(offsets: np.ndarray, flat_index: int, char: str) -> NoReturn:
    record = int(np.searchsorted(offsets, flat_index, side="right")) - 1
    position = flat_index - int(offsets[record]) + 1
    raise InputError(
        f"protein sequence {record}: character {char!r} at position {position} "
        "is not an amino-acid letter"
    )


@dataclass(frozen=True)
class PackedBatch:
    """One step's sequences packed end to end as `<cls> residues <eos>` each.

    With `pad_tokens_to > 1` a dummy segment of padding tokens fills the step up to a
    multiple of it, so compiled kernels always see aligned sizes; it is pooled into an
    extra row that is dropped.
    """

    tokens: np.ndarray  # int64 [T]
    positions: np.ndarray  # int64 [T], restarting at 0 at each BOS
    segments: np.ndarray  # int64 [T], sequence index within the step (dummy: count)
    weights: np.ndarray  # float32 [T], 1 / residues on residue tokens, else 0
    cu_seqlens: np.ndarray  # int32 [segments + 1]
    max_len: int
    count: int  # real sequences
    real_tokens: int  # tokens excluding the dummy segment


def pack_batch(encoded: EncodedProteins, indices: np.ndarray, pad_tokens_to: int) -> PackedBatch:
    """Pack the sequences `indices` (vectorised: no per-sequence Python loop)."""
    residues = encoded.lengths[indices]
    seq_tokens = residues + 2
    real_tokens = int(seq_tokens.sum())
    total = -(-real_tokens // pad_tokens_to) * pad_tokens_to
    segment_lengths = (
        seq_tokens if total == real_tokens else np.append(seq_tokens, total - real_tokens)
    )
    starts = np.concatenate(([0], np.cumsum(segment_lengths)))

    segments = np.repeat(np.arange(len(segment_lengths)), segment_lengths)
    positions = np.arange(total) - starts[segments]
    tokens = np.full(total, PAD_IDX, dtype=np.int64)
    tokens[starts[: len(indices)]] = CLS_IDX
    tokens[starts[1 : len(indices) + 1] - 1] = EOS_IDX
    within = np.arange(residues.sum()) - np.repeat(np.cumsum(residues) - residues, residues)
    source = np.repeat(encoded.offsets[indices], residues) + within
    target = np.repeat(starts[: len(indices)] + 1, residues) + within
    tokens[target] = encoded.residues[source]
    weights = np.zeros(total, dtype=np.float32)
    weights[target] = np.repeat(1.0 / residues, residues)

    max_len = int(segment_lengths.max())
    if pad_tokens_to > 1:  # aligned like the token count
        max_len = -(-max_len // 128) * 128
    return PackedBatch(
        tokens=tokens,
        positions=positions,
        segments=segments,
        weights=weights,
        cu_seqlens=starts.astype(np.int32),
        max_len=max_len,
        count=len(indices),
        real_tokens=real_tokens,
    )


def probe_proteins(tokens: int, seed: int = 0) -> list[str]:
    """Random proteins of `PROBE_RESIDUES` lengths that pack into exactly `tokens`
    tokens (BOS + residues + EOS each), a full step for the budget probe."""
    lengths: list[int] = []
    left = tokens
    while left >= 3:  # a sequence needs at least one residue
        lengths.append(min(PROBE_RESIDUES[len(lengths) % len(PROBE_RESIDUES)], left - 2))
        left -= lengths[-1] + 2
    if lengths:
        lengths[-1] += left  # 0 to 2 tokens short of the step: the last one grows
    rng = np.random.default_rng(seed)
    letters = np.frombuffer(b"ACDEFGHIKLMNPQRSTVWY", dtype=np.uint8)
    return [rng.choice(letters, n).tobytes().decode() for n in lengths]


class EsmEmbedder:
    """Mean-pooled last-layer ESM-2 embeddings, FP32 `[n, dim]` in input order."""

    def __init__(
        self,
        model_or_checkpoint: Esm2 | str | Path,
        device: str = "auto",
        precision: Precision = "auto",
        max_tokens: int | None = None,
        compile: bool | None = None,
        pad_tokens_to: int | None = None,
    ):
        """`model_or_checkpoint`: our `Esm2` (moved and cast in place: the embedder owns
        it) or anything `load_esm2` accepts (model name or file).

        `max_tokens` bounds the packed tokens per step; None (`auto`): 4096 on the CPU,
        on CUDA sized by a short probe of this GPU's memory with the loaded model (see
        `virnucpro.models.budget`; the choice is logged and kept in `self.budget`).
        `compile` (default: on CUDA only) wraps the model in `torch.compile`.
        `pad_tokens_to` pads each step to a multiple of it so compiled kernels see
        aligned sizes (default 256 when compiling, else 1: no padding). A compile that
        fails falls back to eager, logged once.
        """
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(precision, self.device)
        self.compile = self.device.type == "cuda" if compile is None else compile
        self.pad_tokens_to = pad_tokens_to or (256 if self.compile else 1)
        if not isinstance(model_or_checkpoint, Esm2):
            _, model_or_checkpoint = load_esm2(
                model_or_checkpoint, device=self.device, dtype=self.dtype
            )
        self.model = model_or_checkpoint.to(device=self.device, dtype=self.dtype).eval()
        # dynamic=True: one graph for every step size, instead of a recompile when the
        # sequence count, packed length or longest sequence first changes (4 graphs).
        self._forward = torch.compile(self.model, dynamic=True) if self.compile else self.model
        self.last_stats = EmbedStats()
        # Probed through the compiled model, as the real steps run (it compiles here).
        self.budget: BudgetChoice | None = None  # None: `max_tokens` was given
        if max_tokens is None:
            self.budget = choose_token_budget(ESM_BUDGET, self.device, self.probe_step)
            max_tokens = self.budget.tokens
        self.max_tokens = max_tokens
        log.info(
            "ESM-2 embedder on %s in %s, %d tokens per step, compile=%s",
            self.device,
            self.dtype,
            self.max_tokens,
            self.compile,
        )

    @property
    def dim(self) -> int:
        return self.model.config.embed_dim

    def embed(self, sequences: Sequence[str]) -> np.ndarray:
        """Embed protein strings; row i belongs to `sequences[i]`."""
        started = time.perf_counter()
        stats = EmbedStats(sequences=len(sequences))
        out = np.empty((len(sequences), self.dim), dtype=np.float32)
        if len(sequences) == 0:
            self.last_stats = stats
            return out
        encoded = encode_proteins(sequences)
        stats.truncated = encoded.truncated
        if encoded.truncated:
            log.warning(
                "%d protein sequence(s) longer than %d residues were truncated to their first "
                "%d residues (ESM-2's context)",
                encoded.truncated,
                MAX_RESIDUES,
                MAX_RESIDUES,
            )

        def count_split(_: int) -> None:
            stats.oom_splits += 1

        def run(indices: np.ndarray) -> torch.Tensor:
            batch = pack_batch(encoded, indices, self.pad_tokens_to)
            pooled = self._embed_packed(batch)
            stats.steps += 1  # counted after success: a step that ran out of memory is not
            stats.tokens += batch.real_tokens
            stats.padding_tokens += len(batch.tokens) - batch.real_tokens
            return pooled

        pieces = []
        for step in token_budget_batches(encoded.lengths + 2, self.max_tokens):
            pieces += run_splitting_on_oom(step, run, on_split=count_split)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # the non-blocking copies have landed
        for indices, pooled in pieces:
            out[indices] = pooled.numpy()
        stats.seconds = time.perf_counter() - started
        self.last_stats = stats
        return out

    def probe_step(self, tokens: int) -> None:
        """One step of exactly `tokens` packed tokens of `probe_proteins`, through the
        path real steps take, for the budget probe to measure."""
        encoded = encode_proteins(probe_proteins(tokens))
        self._embed_packed(pack_batch(encoded, np.arange(len(encoded.lengths)), self.pad_tokens_to))

    def _run_model(self, *inputs) -> torch.Tensor:
        """The model, compiled where asked; should compiling fail (a torch or driver
        problem, not an input one), log it once and go on uncompiled rather than lose
        the run. Out-of-memory is left to the caller's split-and-retry."""
        try:
            return self._forward(*inputs)
        except Exception as error:
            if self._forward is self.model or is_out_of_memory(error):
                raise
            log.warning("torch.compile failed, ESM-2 continues uncompiled: %s", error)
            self._forward = self.model
            self.compile = False
            return self.model(*inputs)

    def _embed_packed(self, batch: PackedBatch) -> torch.Tensor:
        """Forward and pool one packed step; returns a host tensor (copy may be in flight)."""
        pin = self.device.type == "cuda"

        def to_device(array: np.ndarray) -> torch.Tensor:
            tensor = torch.from_numpy(array)
            if pin:
                tensor = tensor.pin_memory()
            return tensor.to(self.device, non_blocking=True)

        with torch.inference_mode():
            tokens, positions, cu_seqlens = map(
                to_device, (batch.tokens, batch.positions, batch.cu_seqlens)
            )
            segments, weights = to_device(batch.segments), to_device(batch.weights)
            hidden = self._run_model(tokens, positions, cu_seqlens, batch.max_len)
            pooled = torch.zeros(batch.count + 1, self.dim, device=self.device)
            pooled.index_add_(0, segments, hidden.float() * weights[:, None])
            host = torch.empty(batch.count, self.dim, pin_memory=pin)
            host.copy_(pooled[: batch.count], non_blocking=True)
        return host
