"""Where the models come from, resolved once per run to local files before any worker
starts: workers only ever read local paths, and never download.

- ESM-2: a checkpoint file, or a fair-esm model name fetched from fair-esm's URL into
  fair-esm's own torch.hub cache file (`<hub>/checkpoints/<name>.pt`, so a copy fair-esm
  downloaded is reused), or into `<model_cache>/esm/` when a model cache is given.
- DNABERT-S: a local snapshot directory, or a Hugging Face hub id fetched (at
  `revision`) into the hub cache (or `<model_cache>/huggingface`).

A value is a hub id only when it can be one (`owner/name`; for ESM-2 a known fair-esm
name); anything with two or more separators, starting with `.`, `/` or `~`, or inside
an existing local folder, is a local path, so a mistyped directory fails at once
instead of trying the network.
Offline or misspelled, resolution fails within seconds with one line saying what to do;
a download goes to a temporary name first, so nothing half-written is ever used.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from virnucpro.atomic_write import partial_file
from virnucpro.deadline import call_with_deadline
from virnucpro.errors import CheckpointError

log = logging.getLogger(__name__)
T = TypeVar("T")

ESM2_3B = "esm2_t36_3B_UR50D"
DNABERT_S = "zhihan1996/DNABERT-S"

ESM2_URL = "https://dl.fbaipublicfiles.com/fair-esm/models/{name}.pt"
# Seconds without an answer before a download counts as failed (connect or read).
NETWORK_TIMEOUT = 10.0
# Seconds the hub has to say whether a model exists, retries included.
HUB_ANSWER_TIMEOUT = 25.0
# What a usable DNABERT-S snapshot holds, besides its weights.
SNAPSHOT_FILES = ("config.json", "tokenizer.json")
WEIGHT_FILES = ("pytorch_model.bin", "model.safetensors")


def is_local_path(value: str | Path) -> bool:
    """True for a value that can only be a path (see the module docstring), or whose
    first part is a local directory (`models/dnabert_tst` next to a `models/` folder)."""
    text = str(value)
    if text.startswith((".", "/", "~")) or text.count("/") + text.count("\\") > 1:
        return True
    return "/" in text and Path(text).parent.is_dir()


def resolve_esm(name_or_path: str | Path, model_cache: Path | None = None) -> Path:
    """The local checkpoint file for an ESM-2 option, downloading a known name if needed."""
    from virnucpro.models.esm_checkpoint import ESM2_MODELS

    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    name = str(name_or_path)
    if name not in ESM2_MODELS or is_local_path(name):
        raise CheckpointError(
            f"{name}: no such file, and not a known ESM-2 model name "
            f"(known: {', '.join(ESM2_MODELS)})"
        )
    target = esm_cache_file(name, model_cache)
    if not target.is_file():
        _download(ESM2_URL.format(name=name), target, name)
    return target


def esm_cache_file(name: str, model_cache: Path | None = None) -> Path:
    """Where a fair-esm model name is kept: fair-esm's torch.hub file, or the model cache."""
    if model_cache is not None:
        return Path(model_cache) / "esm" / f"{name}.pt"
    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / f"{name}.pt"


def _download(url: str, target: Path, name: str) -> None:
    """Fetch `url` to `target` through a temporary file, failing within NETWORK_TIMEOUT
    of silence with one line on what to do instead."""
    import urllib.request  # here: every `virnucpro` start would pay for it

    log.info("downloading %s to %s", url, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with (
            partial_file(target) as partial,
            urllib.request.urlopen(url, timeout=NETWORK_TIMEOUT) as response,
            partial.open("wb") as out,
        ):
            shutil.copyfileobj(response, out, 1 << 24)
    except (OSError, ValueError) as error:  # URLError, HTTPError, timeouts, refused
        raise CheckpointError(
            f"{name}: not in the model cache ({target}) and it cannot be downloaded from "
            f"{url} ({getattr(error, 'reason', error)}); download it where there is a "
            f"network and pass its path (--esm-model FILE), or copy it to {target}"
        ) from None


def resolve_dnabert(
    name_or_path: str | Path, revision: str | None = None, model_cache: Path | None = None
) -> Path:
    """The local snapshot directory for a DNABERT-S option, downloading a hub id if needed."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    name = str(name_or_path)
    if is_local_path(name) or path.exists() or name.count("/") != 1:
        raise CheckpointError(
            f"{name}: no such directory, and not a Hugging Face hub id (owner/name)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    cache_dir = Path(model_cache) / "huggingface" if model_cache is not None else None
    where = f"{name}@{revision or 'main'}"
    try:
        snapshot = snapshot_download(
            name, revision=revision, cache_dir=cache_dir, local_files_only=True
        )
    except LocalEntryNotFoundError:
        # Ask the hub first, with a hard bound: offline or misspelled must fail in
        # seconds, whatever the client's own retries do. Only then download.
        commit = _bounded(lambda: _hub_commit(name, revision), HUB_ANSWER_TIMEOUT, where, name)
        log.info("downloading %s (commit %s) into the model cache", where, commit)
        snapshot = _bounded(
            lambda: snapshot_download(name, revision=commit, cache_dir=cache_dir),
            None,
            where,
            name,
        )
    snapshot = Path(snapshot)
    _check_snapshot(snapshot, where)
    log.info("DNABERT-S %s is the snapshot %s", where, snapshot)
    return snapshot


def _hub_commit(name: str, revision: str | None) -> str:
    """The commit a hub revision points at (one metadata request)."""
    from huggingface_hub import HfApi

    return HfApi().model_info(name, revision=revision, timeout=NETWORK_TIMEOUT).sha


def _bounded(call: Callable[[], T], timeout: float | None, where: str, name: str) -> T:
    """A hub call with a deadline; its failures become one line saying what to do."""
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        return call_with_deadline(call, timeout, f"the Hugging Face hub for {where}")
    except (RepositoryNotFoundError, RevisionNotFoundError) as error:
        raise CheckpointError(
            f"{where}: no such model or revision on the Hugging Face hub "
            f"({type(error).__name__}); check the spelling, or pass a local directory"
        ) from None
    except Exception as error:  # offline: connection, timeout and HTTP errors alike
        reason = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
        raise CheckpointError(
            f"{where}: not in the model cache and it cannot be downloaded ({reason}); "
            f"download it where there is a network (huggingface-cli download {name}) and "
            "pass the snapshot directory (--dnabert-model DIR), or --model-cache a copy of "
            "that cache"
        ) from None


def _check_snapshot(snapshot: Path, where: str) -> None:
    """A snapshot missing files (an interrupted download) is refused, never half-used."""
    missing = [f for f in SNAPSHOT_FILES if not (snapshot / f).is_file()]
    if not any((snapshot / f).is_file() for f in WEIGHT_FILES):
        missing.append(" or ".join(WEIGHT_FILES))
    if missing:
        raise CheckpointError(
            f"{where}: the snapshot {snapshot} lacks {', '.join(missing)}; "
            "delete it and run again to download it whole"
        )


def needs_remote_code(snapshot: Path) -> bool:
    """True when the model's config maps to code shipped in its repository (auto_map)."""
    config = Path(snapshot) / "config.json"
    try:
        return "auto_map" in json.loads(config.read_text())
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{config}: cannot read the model's config: {error}") from None


def check_remote_code(snapshot: Path, trust_remote_code: bool) -> bool:
    """Whether loading runs the model's own code; an error if it would without permission."""
    remote = needs_remote_code(snapshot)
    if remote and not trust_remote_code:
        raise CheckpointError(
            f"{snapshot}: this model ships its own Python code (DNABERT-S's ALiBi BERT), "
            "which runs when it is loaded; pass trust_remote_code=True "
            "(CLI: --trust-remote-code) if you trust the model's source"
        )
    return remote
