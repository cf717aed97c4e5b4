"""Load ESM-2 weights safely into our model (`virnucpro.models.esm_model.Esm2`).

Three sources are accepted, all read with `torch.load(weights_only=True)` so a model
file can never run code:

- a fair-esm model name (`esm2_t36_3B_UR50D`, ...): the file `models.sources` fetched
  into fair-esm's torch.hub cache. fair-esm's own hub loader unpickles fully, which is
  why we download and read the file ourselves;
- a fair-esm hub file `{"cfg": {"model": ...}, "model": state_dict}` whose keys carry
  the `encoder.sentence_encoder.` / `encoder.` prefixes (stripped as fair-esm's
  `_load_model_and_alphabet_core_v2` does). `cfg["model"]` may be a dict or an
  `argparse.Namespace` (allow-listed: it is a plain attribute bag);
- a plain fair-esm `ESM2` state dict (`layers.0.self_attn.q_proj.weight`, ...).

The architecture comes from the tensors (layer count, embedding width); the number of
heads, which shapes cannot reveal, from the file's cfg, else an explicit argument, else
the table of released ESM-2 sizes. Loading is strict: any missing or unexpected weight is
an error, except the LM head, the contact head and the rotary `inv_freq` buffers, which
we do not use (`inv_freq` is recomputed from the head size).

Memory: the file is memory-mapped and the model built on the meta device, then the
file's tensors are assigned to it and converted once, straight to the caller's device
and dtype. The old way (build an FP32 model, then copy the file into it) held two host
copies: 17 GB of RAM and 66 s for a 3B FP16 file, per Dask worker.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch

from virnucpro.errors import CheckpointError
from virnucpro.models.esm_model import ALPHABET, Esm2, EsmConfig
from virnucpro.models.sources import resolve_esm

log = logging.getLogger(__name__)

ESM2_MODELS: dict[str, EsmConfig] = {
    "esm2_t6_8M_UR50D": EsmConfig(6, 320, 20),
    "esm2_t12_35M_UR50D": EsmConfig(12, 480, 20),
    "esm2_t30_150M_UR50D": EsmConfig(30, 640, 20),
    "esm2_t33_650M_UR50D": EsmConfig(33, 1280, 20),
    "esm2_t36_3B_UR50D": EsmConfig(36, 2560, 40),
    "esm2_t48_15B_UR50D": EsmConfig(48, 5120, 40),
}
_HEADS_BY_SHAPE = {(c.num_layers, c.embed_dim): c.attention_heads for c in ESM2_MODELS.values()}

_HUB_PREFIX = re.compile(r"^(encoder\.sentence_encoder\.|encoder\.)")
_IGNORED_KEY = re.compile(r"^(lm_head\.|contact_head\.)|\.rot_emb\.inv_freq$")
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.")


def load_esm2(
    name_or_path: str | Path,
    *,
    attention_heads: int | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[EsmConfig, Esm2]:
    """Build our ESM-2 from a fair-esm model name or checkpoint file, in eval mode, with
    its weights on `device` in `dtype` (whatever precision the file stores)."""
    path = resolve_esm(name_or_path)
    state, cfg_heads = _read_state_dict(path)
    config = _infer_config(path, state, cfg_heads, attention_heads)
    with torch.device("meta"):
        model = Esm2(config)
    _load_strict(path, model, state)
    model = model.to(device=device, dtype=dtype).eval().requires_grad_(False)
    log.info(
        "loaded ESM-2 from %s: %d layers, %d dims, %d heads",
        path,
        config.num_layers,
        config.embed_dim,
        config.attention_heads,
    )
    return config, model


def _read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], int | None]:
    """The state dict with hub prefixes stripped, and the head count from cfg if present."""
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            # Only torch's zip format can be memory-mapped; pre-1.6 files are read whole.
            mmap = zipfile.is_zipfile(path)
            data = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as error:
        reason = str(error).split("WeightsUnpickler error:")[-1].strip().splitlines()[0]
        if "Unsupported global" not in reason and "Unsupported class" not in reason:
            raise CheckpointError(f"{path}: not a PyTorch checkpoint ({reason})") from error
        raise CheckpointError(
            f"{path}: refused by the safe loader (torch.load weights_only=True), "
            f"it holds objects other than weights: {reason}"
        ) from error
    except Exception as error:  # torch raises many types for a non-torch file
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({error})") from error

    if not isinstance(data, Mapping):
        raise CheckpointError(f"{path}: holds a {type(data).__name__}, not a state dict")
    cfg_heads = None
    if isinstance(data.get("model"), Mapping):  # fair-esm hub format
        cfg_heads = _heads_from_cfg(path, data.get("cfg"))
        data = {_HUB_PREFIX.sub("", key): value for key, value in data["model"].items()}
    not_tensors = [key for key, value in data.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"{path}: not an ESM-2 state dict or fair-esm hub file "
            f"(non-tensor entries: {', '.join(map(str, not_tensors[:5]))})"
        )
    state = {key: value for key, value in data.items() if not _IGNORED_KEY.search(key)}
    return state, cfg_heads


def _heads_from_cfg(path: Path, cfg: object) -> int | None:
    """`cfg["model"].encoder_attention_heads`, whether `cfg["model"]` is a dict or Namespace."""
    if not isinstance(cfg, Mapping) or cfg.get("model") is None:
        return None
    model_cfg = cfg["model"]
    if not isinstance(model_cfg, Mapping):
        model_cfg = vars(model_cfg)
    if model_cfg.get("token_dropout", True) is False:
        raise CheckpointError(
            f"{path}: cfg says token_dropout=False; only ESM-2 models trained with token "
            "dropout (all released ones) are supported"
        )
    heads = model_cfg.get("encoder_attention_heads")
    return int(heads) if heads is not None else None


def _infer_config(
    path: Path, state: Mapping[str, torch.Tensor], cfg_heads: int | None, heads_arg: int | None
) -> EsmConfig:
    embed = state.get("embed_tokens.weight")
    if embed is None or embed.ndim != 2 or embed.shape[0] != len(ALPHABET):
        first = ", ".join(list(state)[:5])
        raise CheckpointError(
            f"{path}: no embed_tokens.weight of shape [{len(ALPHABET)}, dim]; "
            f"not an ESM-2 state dict (first keys: {first})"
        )
    layers = {int(m.group(1)) for key in state if (m := _LAYER_KEY.match(key))}
    num_layers, embed_dim = len(layers), int(embed.shape[1])
    if layers != set(range(num_layers)) or num_layers == 0:
        raise CheckpointError(f"{path}: transformer layer indices {sorted(layers)} are not 0..n-1")

    if cfg_heads is not None and heads_arg is not None and cfg_heads != heads_arg:
        raise CheckpointError(
            f"{path}: cfg says {cfg_heads} attention heads but {heads_arg} were requested"
        )
    heads = cfg_heads or heads_arg or _HEADS_BY_SHAPE.get((num_layers, embed_dim))
    if heads is None:
        raise CheckpointError(
            f"{path}: {num_layers} layers × {embed_dim} dims is not a released ESM-2 size and "
            "the file has no cfg; pass attention_heads explicitly"
        )
    try:
        return EsmConfig(num_layers, embed_dim, heads)
    except ValueError as error:
        raise CheckpointError(f"{path}: {error}") from error


def _load_strict(path: Path, model: Esm2, state: Mapping[str, torch.Tensor]) -> None:
    expected, found = set(model.state_dict()), set(state)
    problems = []
    if missing := sorted(expected - found):
        problems.append(f"missing {len(missing)} weight(s): {', '.join(missing[:10])}")
    if unexpected := sorted(found - expected):
        problems.append(f"unexpected {len(unexpected)} weight(s): {', '.join(unexpected[:10])}")
    if problems:
        raise CheckpointError(f"{path}: does not match ESM-2; " + "; ".join(problems))
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as error:  # shape mismatches
        detail = " ".join(str(error).split())  # torch's message spans several lines
        raise CheckpointError(f"{path}: weight shapes do not match ESM-2: {detail}") from error
