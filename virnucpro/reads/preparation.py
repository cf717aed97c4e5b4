"""Reads → chunks → stop-free frames, written in the original tool's file formats.

`prepare_reads` cuts the FASTA file into blocks of whole records; each block is parsed,
validated, chunked and translated at once (translation.py) — in worker processes when
there is more than one block — and writes its piece of the four outputs:
`<stem>_chunked<L>.fa` (chunks, 60-column lines, original case), the identified
nucleotide and protein files (one line per kept frame, as the original writes them)
and the ledger. The pieces are joined in input order under temporary names and renamed
only when the whole input was read without error, so a failed run never leaves outputs
that look complete.
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import multiprocessing
import operator
import os
import shutil
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np

from virnucpro.atomic_write import partial_file
from virnucpro.errors import InputError
from virnucpro.reads import ledger
from virnucpro.reads.chunking import CHUNK_LENGTHS, chunk_reads
from virnucpro.reads.fasta import (
    DuplicateIds,
    FastaReader,
    RecordBlock,
    RecordError,
    fasta_stem,
    parse_block,
)
from virnucpro.reads.translation import FRAME_SUFFIXES, STATUS_OK, select_frames

_WRAP = 60  # Biopython's FASTA line width, used by the original for the chunk file
_OUTPUTS = ("chunked", "nucleotide", "protein", "ledger")
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)

Progress = Callable[[int, int], None]  # (bytes read, bytes in file)


@dataclass
class PreparationCounts:
    """What one input held: reads, empty reads, chunks, chunks with no kept frame, frames."""

    reads: int = 0
    empty_reads: int = 0
    chunks: int = 0
    chunks_without_frames: int = 0
    frames: int = 0

    def add(self, other: PreparationCounts) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))


@dataclass(frozen=True)
class PreparedFiles:
    """The four files `prepare_reads` writes for one input, and what they hold."""

    chunked: Path
    nucleotide: Path
    protein: Path
    ledger: Path
    counts: PreparationCounts = field(default_factory=PreparationCounts)


def output_paths(reads_path: Path, chunk_length: int, out_dir: Path) -> PreparedFiles:
    """Where the outputs for `reads_path` go (names as the original tool makes them)."""
    base = out_dir / f"{fasta_stem(reads_path)}_chunked{chunk_length}"
    return PreparedFiles(
        chunked=Path(f"{base}.fa"),
        nucleotide=Path(f"{base}_identified_nucleotide.fa"),
        protein=Path(f"{base}_identified_protein.faa"),
        ledger=Path(f"{base}_ledger.tsv"),
    )


@functools.cache
def _lines_of(length: int) -> Callable[[str], tuple[str, ...]]:
    """A sequence of `length` cut into its lines, in one C call (itemgetter of slices)."""
    slices = [slice(i, i + _WRAP) for i in range(0, length, _WRAP)]
    if len(slices) <= 1:
        return lambda sequence: (sequence,)
    return operator.itemgetter(*slices)


def _wrapped(record_id: str, sequence: str) -> str:
    lines = "\n".join(_lines_of(len(sequence))(sequence))
    return f">{record_id}\n{lines}\n"


def _one_line_records(ids: list[str], sequences: list[str]) -> str:
    return "".join(f">{i}\n{s}\n" for i, s in zip(ids, sequences, strict=True))


@dataclass(frozen=True)
class _BlockResult:
    """What a worker hands back: the block's read ids (for the duplicate check), its
    counts, and the four piece files it wrote."""

    ids: list[str]
    counts: PreparationCounts
    pieces: dict[str, Path]


def _prepare_block(block: RecordBlock, chunk_length: int, piece_dir: Path) -> _BlockResult:
    """Parse, chunk and translate one block of records; write its output pieces."""
    reads = parse_block(block)
    sequences = [read.sequence for read in reads]
    chunks_of = chunk_reads(np.fromiter(map(len, sequences), np.int64, len(reads)), chunk_length)
    owner = chunks_of.read.tolist()
    starts, ends = chunks_of.start.tolist(), chunks_of.end.tolist()
    chunk_ids = [
        f"{reads[r].id}_chunk_{k}" for r, k in zip(owner, chunks_of.number.tolist(), strict=True)
    ]
    chunks = [sequences[r][a:b] for r, a, b in zip(owner, starts, ends, strict=True)]
    frames = select_frames(chunks)

    frame_ids = [
        chunk_ids[c] + FRAME_SUFFIXES[f]
        for c, f in zip(frames.chunk.tolist(), frames.frame.tolist(), strict=True)
    ]
    kept = [""] * len(chunks)
    for c, frame_id in zip(frames.chunk.tolist(), frame_ids, strict=True):
        kept[c] = f"{kept[c]},{frame_id}" if kept[c] else frame_id
    lines = ledger.format_columns(
        [reads[r].id for r in owner],
        [len(sequences[r]) for r in owner],
        chunk_ids,
        starts,
        [b - a for a, b in zip(starts, ends, strict=True)],
        kept,
        frames.ambiguous_codons_dropped.tolist(),
        frames.status,
    )
    empty = [read for read in reads if not read.sequence]
    if empty:  # no chunk, but a ledger row all the same, in read order
        numbered = [(reads[r].number, line) for r, line in zip(owner, lines, strict=True)]
        numbered += [
            (
                r.number,
                ledger.format_row(
                    ledger.LedgerRow(r.id, 0, "", 0, 0, "", 0, ledger.STATUS_EMPTY_READ)
                ),
            )
            for r in empty
        ]
        lines = [line for _, line in sorted(numbered, key=lambda item: item[0])]

    texts = {
        "chunked": "".join(map(_wrapped, chunk_ids, chunks)),
        "nucleotide": _one_line_records(frame_ids, frames.nucleotide),
        "protein": _one_line_records(frame_ids, frames.protein),
        "ledger": "".join(lines),
    }
    pieces = {}
    for name, text in texts.items():
        pieces[name] = piece_dir / f"{block.index}.{name}"
        pieces[name].write_text(text)
    counts = PreparationCounts(
        reads=len(reads),
        empty_reads=len(empty),
        chunks=len(chunks),
        chunks_without_frames=sum(s != STATUS_OK for s in frames.status),
        frames=len(frame_ids),
    )
    return _BlockResult([r.id for r in reads], counts, pieces)


def _reuse_freed_memory() -> None:
    """In a worker: keep memory freed after a block for the next one. glibc returns
    allocations of a block's size to the kernel when they are freed, and the next
    block faults them in again page by page: a sixth of a short preparation's time
    went to that. No-op without glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, 64 << 20)  # allocate below this from the heap ...
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)  # ... and keep this much of it free


def _results_in_order(
    blocks: Iterator[RecordBlock], chunk_length: int, piece_dir: Path, workers: int
) -> Iterator[_BlockResult]:
    """Block results in input order: in this process for a single block, else in a pool
    with a bounded number of blocks in flight (memory stays a few blocks' worth)."""
    head = list(itertools.islice(blocks, 2))
    if len(head) < 2 or workers <= 1:
        for block in itertools.chain(head, blocks):
            yield _prepare_block(block, chunk_length, piece_dir)
        return
    # fork starts workers in milliseconds with everything imported, but copying a
    # process that runs other threads (a Prefect task, torch) can deadlock the child:
    # then spawn, which starts clean.
    method = "fork" if threading.active_count() == 1 else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_reuse_freed_memory) as pool:
        pending: deque[Future[_BlockResult]] = deque()
        for block in itertools.chain(head, blocks):
            pending.append(pool.submit(_prepare_block, block, chunk_length, piece_dir))
            if len(pending) >= 2 * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _append(target: BinaryIO, piece: Path) -> None:
    """Append a piece file, copied by the kernel where it can (the main process stays
    free to feed the workers); `target` is unbuffered so the order of writes holds."""
    with open(piece, "rb") as source:
        remaining = os.fstat(source.fileno()).st_size
        try:
            while remaining > 0:
                copied = os.copy_file_range(source.fileno(), target.fileno(), remaining)
                if copied == 0:
                    break
                remaining -= copied
        except OSError:  # a filesystem without copy_file_range: copy through here
            pass
        if remaining > 0:
            source.seek(-remaining, os.SEEK_END)
            shutil.copyfileobj(source, target, 1 << 22)
    piece.unlink()


def prepare_reads(
    reads_path: Path | str,
    chunk_length: int,
    out_dir: Path | str,
    *,
    progress: Progress | None = None,
    workers: int | None = None,
    block_bytes: int = 1_000_000,
) -> PreparedFiles:
    """Chunk, translate and select frames for every read of `reads_path`.

    Returns the output paths and counts. Raises InputError (naming file, record and
    problem) for unusable input; then no output file is left behind. `workers`
    defaults to the CPU count.
    """
    if chunk_length not in CHUNK_LENGTHS:
        raise InputError(
            f"chunk length {chunk_length} is not supported: the VirNucPro classifiers "
            f"exist for {' and '.join(map(str, CHUNK_LENGTHS))} nt"
        )
    reader = FastaReader(reads_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = output_paths(reader.path, chunk_length, out_dir)
    targets = {name: getattr(paths, name) for name in _OUTPUTS}
    counts = PreparationCounts()
    ids = DuplicateIds(reader.path)
    if progress is not None:
        progress(0, reader.size)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".prepare-") as work:
        work = Path(work)
        # Each output under a temporary name, renamed when the stack closes without an
        # error (files closed first), removed otherwise: never half a file set.
        with ExitStack() as stack:
            handles = {
                name: stack.enter_context(
                    open(stack.enter_context(partial_file(path)), "wb", buffering=0)
                )
                for name, path in targets.items()
            }
            handles["ledger"].write(ledger.header().encode())
            results = _results_in_order(
                reader.blocks(block_bytes), chunk_length, work, workers or os.cpu_count() or 1
            )
            try:
                for result in results:  # in input order: `counts` holds all earlier blocks
                    ids.add(result.ids, counts.reads + 1)
                    counts.add(result.counts)
                    for name, piece in result.pieces.items():
                        _append(handles[name], piece)
                    if progress is not None:
                        progress(reader.position(), reader.size)
            except RecordError as error:
                raise error.at(counts.reads) from None
            ids.check()
    if progress is not None:
        progress(reader.size, reader.size)
    return replace(paths, counts=counts)
