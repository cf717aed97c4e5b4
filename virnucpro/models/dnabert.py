"""DNABERT-S embeddings of kept-frame nucleotide slices (SPEC §3).

The original embedded one sequence at a time: tokenizer(seq) → model → last hidden
state → mean over all tokens, [CLS] and [SEP] included, no truncation. We run padded
batches (filled to a token budget, longest first) with an attention mask, and take the
mean over the real tokens only, which gives the same vector per sequence.

`zhihan1996/DNABERT-S` ships its own model code (a BERT variant with ALiBi attention,
`bert_layers.py`), so loading it executes code from the model repository. That is only
done when the caller passes `trust_remote_code=True` (the CLI's `--trust-remote-code`).
The model is loaded from a local snapshot (`models.sources` resolves hub ids first).
Five things in that code need help on a current stack, handled in `_remote_code_compat`
(applied only when loading remote code), `force_pytorch_attention` and `embed_batch`:
- its Triton flash-attention kernel fails on recent Triton; `bert_layers.py` falls back
  to plain PyTorch attention when its module global `flash_attn_qkvpacked_func` is None,
  so after loading we set that global to None in every module the model's classes come
  from;
- its Triton import is guarded by try/except, but transformers' pre-import check still
  demands the `triton` package (absent on CPU-only installs), so that check skips it;
- transformers ≥ 5 builds models on the meta device, where the remote code's ALiBi
  tensor (a plain attribute, not a buffer) cannot be built, so remote-code models are
  built on the CPU instead (built-in transformers models keep the meta-device path,
  which their buffer initialisation relies on);
- DNABERT-2's current configuration class no longer defines `pad_token_id`, which its
  model code reads; it is set to None (what transformers 4 configs held) before the
  model is built;
- in BF16/FP16 the ALiBi tensor stays float32 (`.to(dtype)` skips plain attributes) and
  the additive mask is built in float32 inside `forward`, so the attention product
  mixes dtypes; the forward runs under `torch.autocast`, which casts each matmul's
  inputs to the run's dtype.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import random
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from torch import nn

from virnucpro.errors import CheckpointError
from virnucpro.models.batching import EmbedStats, run_splitting_on_oom, token_budget_batches
from virnucpro.models.budget import BudgetChoice, BudgetSearch, choose_token_budget
from virnucpro.models.device import Precision, resolve_device, resolve_dtype
from virnucpro.models.sources import check_remote_code

log = logging.getLogger(__name__)

# The module global the remote `bert_layers.py` checks before using its Triton kernel.
_FLASH_ATTENTION_GLOBAL = "flash_attn_qkvpacked_func"

# `auto` steps: 32,768 padded tokens on the CPU; on a GPU the probe starts there and may
# go down to 1,024 or up to 16× the start.
DNABERT_BUDGET = BudgetSearch("DNABERT-S", cpu_default=32768, start=32768, floor=1024, cap=524288)
# Probe rows are random DNA of the longest kept frames (500-nt chunks), tokenised by
# the model's own tokenizer: the widest rows real steps hold, and the remote code's
# float32 [rows, heads, length, length] bias grows with the width. Far below the 512
# tokens past which the remote code grows (and keeps) a larger ALiBi tensor.
PROBE_NUCLEOTIDES = 500
PROBE_ROW_VARIETY = 8  # distinct rows, so the step pads a little, as real ones do


@dataclass
class DnabertEmbedder:
    """A loaded DNABERT-S (or stand-in) ready to embed DNA strings."""

    model: nn.Module
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    max_tokens: int
    oom_splits: int = 0  # over the embedder's life; `last_stats` covers one call
    last_stats: EmbedStats = field(default_factory=EmbedStats)
    budget: BudgetChoice | None = None  # how an `auto` max_tokens was chosen

    def size_steps(self) -> None:
        """Set `max_tokens` the `auto` way: the CPU default, or on CUDA the largest
        step this GPU holds under the memory limit with the loaded models (logged)."""
        self.budget = choose_token_budget(DNABERT_BUDGET, self.device, self.probe_step)
        self.max_tokens = self.budget.tokens

    def probe_step(self, tokens: int) -> None:
        """One padded step of `tokens` (rows × widest row) of `PROBE_NUCLEOTIDES`-nt
        random DNA, through `embed_batch`, for the budget probe to measure."""
        rng = random.Random(0)
        pool = self.tokenize(
            ["".join(rng.choices("ACGT", k=PROBE_NUCLEOTIDES)) for _ in range(PROBE_ROW_VARIETY)]
        )
        rows = max(1, tokens // max(map(len, pool)))
        self.embed_batch([pool[row % len(pool)] for row in range(rows)])

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    def tokenize(self, sequences: Sequence[str]) -> list[list[int]]:
        """Token ids with the tokenizer's special tokens, as the original fed the model."""
        if not sequences:
            return []
        return list(self.tokenizer(list(sequences), add_special_tokens=True)["input_ids"])

    def embed(self, sequences: Sequence[str]) -> np.ndarray:
        """Mean last-hidden-state per sequence, float32 [n, dim], in input order."""
        started = time.perf_counter()
        token_ids = self.tokenize(sequences)
        lengths = [len(t) for t in token_ids]
        stats = EmbedStats(sequences=len(token_ids), tokens=sum(lengths))
        splits_before = self.oom_splits
        out = np.empty((len(token_ids), self.dim), dtype=np.float32)
        run = functools.partial(self._embed_indices, token_ids)
        for batch in token_budget_batches(lengths, self.max_tokens, padded=True):
            for indices, rows in run_splitting_on_oom(batch, run, on_split=self._count_split):
                out[indices] = rows
                stats.steps += 1
                stats.padding_tokens += len(indices) * max(lengths[i] for i in indices)
        stats.padding_tokens -= stats.tokens
        stats.oom_splits = self.oom_splits - splits_before
        stats.seconds = time.perf_counter() - started
        self.last_stats = stats
        return out

    def _count_split(self, batch_size: int) -> None:
        self.oom_splits += 1

    def _embed_indices(self, token_ids: list[list[int]], indices: np.ndarray) -> np.ndarray:
        return self.embed_batch([token_ids[i] for i in indices])

    @torch.inference_mode()
    def embed_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        """One padded forward pass; mean over each row's real tokens (padding excluded)."""
        longest = max(len(t) for t in token_ids)
        input_ids = torch.full((len(token_ids), longest), self.tokenizer.pad_token_id)
        mask = torch.zeros((len(token_ids), longest), dtype=torch.long)
        for row, ids in enumerate(token_ids):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            mask[row, : len(ids)] = 1
        input_ids, mask = input_ids.to(self.device), mask.to(self.device)
        # [0] is the last hidden state both for transformers' BertModel output and for
        # the remote DNABERT-S BertModel, which returns a tuple. Autocast: see the
        # module docstring (the remote code's float32 mask and ALiBi bias).
        low_precision = self.dtype != torch.float32
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=low_precision):
            hidden = self.model(input_ids=input_ids, attention_mask=mask)[0].float()
        weights = mask.unsqueeze(-1).float()
        means = (hidden * weights).sum(dim=1) / weights.sum(dim=1)
        return means.cpu().numpy()


def load_dnabert(
    model: str | Path,
    *,
    max_tokens: int | None = None,
    trust_remote_code: bool = False,
    device: str = "auto",
    precision: Precision = "auto",
) -> DnabertEmbedder:
    """Load tokenizer and model from a local snapshot directory, ready for inference.

    `max_tokens` bounds padded tokens (longest × count) per forward pass; None (`auto`)
    sizes it by `DnabertEmbedder.size_steps`, after the model is on its device."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    remote = check_remote_code(Path(model), trust_remote_code)
    torch_device = resolve_device(device)
    dtype = resolve_dtype(precision, torch_device)
    with _remote_code_compat() if remote else contextlib.nullcontext(), warnings.catch_warnings():
        # The remote code warns that it falls back to PyTorch attention without Triton;
        # we turn its Triton kernel off anyway (`force_pytorch_attention`).
        warnings.filterwarnings("ignore", message="Unable to import Triton")
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        if not hasattr(config, "pad_token_id"):
            config.pad_token_id = None
        network = AutoModel.from_pretrained(
            model, config=config, trust_remote_code=trust_remote_code
        )
    patched = force_pytorch_attention(network)
    if patched:
        log.info("DNABERT-S: using PyTorch attention (Triton kernel off in %s)", patched)
    if tokenizer.pad_token_id is None:
        raise CheckpointError(f"{model}: tokenizer has no padding token")
    network = network.to(device=torch_device, dtype=dtype).eval()
    log.info("loaded %s on %s (%s)", model, torch_device, dtype)
    embedder = DnabertEmbedder(
        model=network,
        tokenizer=tokenizer,
        device=torch_device,
        dtype=dtype,
        max_tokens=DNABERT_BUDGET.cpu_default if max_tokens is None else max_tokens,
    )
    if max_tokens is None:
        embedder.size_steps()
    return embedder


def force_pytorch_attention(model: nn.Module) -> list[str]:
    """Turn off the remote code's Triton flash attention; return the modules changed.

    The remote `bert_layers.py` uses plain PyTorch attention when its module global
    `flash_attn_qkvpacked_func` is None, so clear it wherever the model's classes live.
    """
    patched = []
    for name in sorted({type(m).__module__ for m in model.modules()}):
        module = sys.modules.get(name)
        if getattr(module, _FLASH_ATTENTION_GLOBAL, None) is not None:
            setattr(module, _FLASH_ATTENTION_GLOBAL, None)
            patched.append(name)
    return patched


@contextlib.contextmanager
def _remote_code_compat() -> Iterator[None]:
    """While loading: skip the `triton` import check and build models off the meta device.

    Both are scoped to the load; see the module docstring for why each is needed.
    """
    from transformers import PreTrainedModel, dynamic_module_utils

    original_get_imports = dynamic_module_utils.get_imports

    def get_imports(filename: str | Path) -> list[str]:
        return [name for name in original_get_imports(filename) if name != "triton"]

    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.object(dynamic_module_utils, "get_imports", get_imports))
        if hasattr(PreTrainedModel, "get_init_context"):
            original_init_context = PreTrainedModel.get_init_context.__func__

            def get_init_context(cls: type, *args: object, **kwargs: object) -> list:
                contexts = original_init_context(cls, *args, **kwargs)
                return [c for c in contexts if not _is_meta_device(c)]

            stack.enter_context(
                mock.patch.object(
                    PreTrainedModel, "get_init_context", classmethod(get_init_context)
                )
            )
        yield


def _is_meta_device(context: object) -> bool:
    return isinstance(context, torch.device) and context.type == "meta"
