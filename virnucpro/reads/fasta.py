"""Reading reads from FASTA (plain or gzip), refusing bad input with a clear message.

Every problem names the file, the record (1-based number and id) and what is wrong,
and nothing is skipped silently: a record with no sequence is passed on (the ledger
reports it), duplicate ids are refused with the full list, since renaming them would
break the user's own scripts that key on read ids.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from virnucpro.errors import InputError

log = logging.getLogger(__name__)

# IUPAC nucleotide codes (U for RNA), either case. Anything else is refused; the
# non-ACGT codes are accepted and their codons dropped as the original does (SPEC §2).
_NUCLEOTIDES = b"ACGTURYSWKMBDHVNacgturyswkmbdhvn"
_NOT_NUCLEOTIDE = re.compile(f"[^{_NUCLEOTIDES.decode()}]")
_GZIP_MAGIC = b"\x1f\x8b"
_SNIFF_BYTES = 8192
_FASTA_SUFFIXES = (".fa", ".fasta", ".fna", ".fas", ".ffn")
_MAX_LISTED = 20


class Read(NamedTuple):
    """One input record: its 1-based number, FASTA id and sequence. A NamedTuple: one
    is built per read, millions of times."""

    number: int
    id: str
    sequence: str


def fasta_stem(path: Path) -> str:
    """File name without `.gz` and a FASTA suffix: `reads.fa.gz` → `reads`."""
    name = path.name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    for suffix in _FASTA_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_fasta_files(paths: list[Path]) -> list[Path]:
    """Files as given, directories expanded to the FASTA files in them (sorted)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            inside = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and fasta_stem(p) != p.name and not p.name.startswith(".")
            )
            if not inside:
                raise InputError(
                    f"{path}: directory holds no FASTA file ({', '.join(_FASTA_SUFFIXES)})"
                )
            found += inside
        else:
            found.append(path)
    return found


def _open_binary(path: Path, raw: BinaryIO) -> BinaryIO:
    magic = raw.read(2)
    raw.seek(0)
    return gzip.GzipFile(fileobj=raw) if magic == _GZIP_MAGIC else raw


def _sniff(path: Path, head: bytes) -> None:
    """Refuse files that are empty, binary or not FASTA before parsing starts."""
    if not head.strip():
        raise InputError(f"{path}: the file is empty (no FASTA records)")
    if b"\x00" in head:
        raise InputError(f"{path}: the file contains binary data, not FASTA text")
    first = head.lstrip().split(b"\n", 1)[0].rstrip(b"\r")
    if not first.startswith(b">"):
        shown = first[:40].decode("latin-1")
        raise InputError(
            f"{path}: not FASTA: the first line {shown!r} does not start with '>' (a header)"
        )
    if b"\r\n" in head:
        log.info("%s: CRLF line endings; read as plain line ends", path)


@dataclass(frozen=True)
class RecordBlock:
    """Whole records of a file, as bytes: the `index`-th block of `path`.

    Bytes, not text, and not even counted: the reading process only cuts at record
    boundaries (a search from the block's end); decoding, parsing and numbering happen
    in the worker, and record numbers are made absolute where blocks are consumed in
    order (`RecordError.at`)."""

    path: Path
    index: int
    data: bytes
    offset: int | None = None  # where `data` starts in the file, when it is not gzip

    def __reduce__(self) -> tuple:
        """Sent to a worker process, a block of a plain file travels as its place in
        the file, which the worker reads back (from the page cache), instead of as
        megabytes through a pipe: a few percent of the preparation's time."""
        if self.offset is None:
            return super().__reduce__()
        return _read_block, (self.path, self.index, self.offset, len(self.data))


def _read_block(path: Path, index: int, offset: int, length: int) -> RecordBlock:
    with open(path, "rb") as raw:
        return RecordBlock(path, index, os.pread(raw.fileno(), length, offset), offset)


class RecordError(InputError):
    """A bad record, numbered within its block until `at` makes the number absolute."""

    def __init__(self, path: Path, number: int, read_id: str | None, problem: str):
        self.path, self.number, self.read_id, self.problem = path, number, read_id, problem
        super().__init__(path, number, read_id, problem)

    def at(self, records_before: int) -> InputError:
        """The error for a file whose earlier blocks held `records_before` records."""
        which = f"record {records_before + self.number}"
        if self.read_id:
            which += f" ({self.read_id})"
        return InputError(f"{self.path}: {which}: {self.problem}")

    def __str__(self) -> str:
        return str(self.at(0))


def _split_at_records(stream: BinaryIO, block_bytes: int) -> Iterator[bytes]:
    """Whole records, about `block_bytes` at a time. Reading one block ahead lets the
    end of input close the last block, so a file smaller than a block is one block
    (and is prepared in-process, with no worker pool to start)."""
    buffer = stream.read(block_bytes)
    while buffer:
        more = stream.read(block_bytes)
        if not more:
            yield buffer
            return
        cut = buffer.rfind(b"\n>") + 1
        if cut:
            yield buffer[:cut]
            buffer = buffer[cut:] + more
        else:  # one record is longer than a block: read on
            buffer += more


def parse_block(block: RecordBlock) -> list[Read]:
    """Parse and validate the records of a block (runs in worker processes); records
    are numbered from 1 within the block."""
    text = block.data.decode("latin-1")
    if "\r" in text:  # CRLF (or old Mac CR) line ends: read as plain line ends
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    reads = _reads(block, _split_records(text))
    if _invalid(reads):
        # Lines ending in tabs or other whitespace, which the original's parser strips
        # line by line, land here too: read the block again with that parser before
        # looking for the bad record.
        from Bio.SeqIO.FastaIO import SimpleFastaParser

        reads = _reads(block, SimpleFastaParser(io.StringIO(text)))
        if _invalid(reads):
            for read in reads:
                bad = _NOT_NUCLEOTIDE.search(read.sequence)
                if bad:
                    problem = (
                        f"character {bad.group()!r} at position {bad.start() + 1} "
                        "is not a nucleotide code"
                    )
                    raise RecordError(block.path, read.number, read.id, problem)
    return reads


def _split_records(text: str) -> list[tuple[str, str]]:
    """(title, sequence) of each record, as Biopython's SimpleFastaParser (the original
    tool's parser) reads text whose only whitespace is spaces and line ends: text before
    the first header skipped, titles without trailing spaces, sequence lines joined
    without spaces. A few C-speed passes over the whole text, where the parser goes
    line by line (a sixth of the preparation's time)."""
    if not text.startswith(">"):
        first = text.find("\n>")
        if first < 0:
            return []
        text = text[first + 1 :]
    records = []
    for record in text[1:].split("\n>"):
        header, _, body = record.partition("\n")
        records.append((header.rstrip(), body.replace("\n", "").replace(" ", "")))
    return records


def _reads(block: RecordBlock, records: Iterable[tuple[str, str]]) -> list[Read]:
    reads = []
    for number, (title, sequence) in enumerate(records, start=1):
        read_id = title.split(None, 1)[0] if title.strip() else ""
        if not read_id:
            raise RecordError(block.path, number, None, "empty header (no id)")
        reads.append(Read(number, read_id, sequence))
    return reads


def _invalid(reads: list[Read]) -> bool:
    """Whether any sequence holds a character that is not a nucleotide code: one
    C-speed pass over all of them (delete the valid codes: nothing may remain)."""
    return bool("".join(r.sequence for r in reads).encode("latin-1").translate(None, _NUCLEOTIDES))


class DuplicateIds:
    """Collects read ids across blocks; refuses duplicates once all have been seen."""

    def __init__(self, path: Path):
        self.path = path
        self._first_seen: dict[str, int] = {}
        self._duplicates: dict[str, list[int]] = {}

    def add(self, ids: list[str], first_number: int) -> None:
        for number, read_id in enumerate(ids, start=first_number):
            first = self._first_seen.setdefault(read_id, number)
            if first != number:
                self._duplicates.setdefault(read_id, [first]).append(number)

    def check(self) -> None:
        if not self._duplicates:
            return
        listed = "; ".join(
            f"{rid} (records {', '.join(map(str, nums))})"
            for rid, nums in list(self._duplicates.items())[:_MAX_LISTED]
        )
        more = len(self._duplicates) - _MAX_LISTED
        raise InputError(
            f"{self.path}: {len(self._duplicates)} read ids occur more than once: {listed}"
            + (f"; and {more} more" if more > 0 else "")
            + ". Read ids must be unique: outputs are keyed by them."
        )


class FastaReader:
    """Reads one FASTA file (plain or gzip) in blocks of whole records.

    The reading process only splits text at record boundaries; parsing and validation
    (`parse_block`) can then run in parallel. `position()` and `size` (bytes on disk,
    compressed if it is) let a caller draw a progress bar.
    """

    def __init__(self, path: Path | str):
        self.path = Path(path)
        if not self.path.exists():
            raise InputError(f"{self.path}: no such file")
        if not self.path.is_file():
            raise InputError(f"{self.path}: not a regular file")
        self.size = self.path.stat().st_size
        self._raw: BinaryIO | None = None

    def position(self) -> int:
        """Bytes of the file consumed so far."""
        return self._raw.tell() if self._raw is not None and not self._raw.closed else self.size

    def blocks(self, block_bytes: int = 4_000_000) -> Iterator[RecordBlock]:
        """Blocks of about `block_bytes` bytes, each ending at a record boundary."""
        last_header = ""
        with open(self.path, "rb") as raw:
            self._raw = raw
            stream = _open_binary(self.path, raw)
            try:
                _sniff(self.path, stream.read(_SNIFF_BYTES))
                stream.seek(0)
                offset = 0 if stream is raw else None
                for index, block in enumerate(_split_at_records(stream, block_bytes)):
                    yield RecordBlock(self.path, index, block, offset)
                    if offset is not None:
                        offset += len(block)
                    last = block[block.rfind(b"\n>") + 2 :].split(None, 1)[0]
                    last_header = last.decode("latin-1")
            except (EOFError, gzip.BadGzipFile, zlib.error) as error:
                where = f"after read {last_header}" if last_header else "in its first record"
                raise InputError(
                    f"{self.path}: the gzip data is truncated or corrupt {where}: {error}"
                ) from None

    def __iter__(self) -> Iterator[Read]:
        """All reads, validated, in file order; duplicate ids refused at the end."""
        ids = DuplicateIds(self.path)
        before = 0
        for block in self.blocks():
            try:
                reads = parse_block(block)
            except RecordError as error:
                raise error.at(before) from None
            ids.add([r.id for r in reads], before + 1)
            yield from (read._replace(number=before + read.number) for read in reads)
            before += len(reads)
        ids.check()
