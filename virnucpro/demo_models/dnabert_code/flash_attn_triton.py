"""VirNucPro's own stand-in for DNABERT-S's `flash_attn_triton.py`, written for tests.

The real module holds a 2022 Triton FlashAttention kernel with an ALiBi bias input and
imports `triton` at module level. That import is the trait reproduced here:

* where `triton` is missing (CPU installs), importing this module fails, so
  `bert_layers.py` (which imports it inside try/except) falls back to plain PyTorch
  attention, and transformers' import check for Hub repositories demands `triton`;
* where `triton` is present (PyTorch CUDA wheels bring it), `bert_layers.py` takes the
  kernel path. The real kernel no longer compiles with current Triton releases; this
  stand-in raises `NotImplementedError` instead, so a loader that does not force the
  PyTorch path fails here just as it would on the real code.
"""

from __future__ import annotations

import torch
import triton  # noqa: F401  (imported only for the import-time behaviour described above)


def flash_attn_qkvpacked_func(
    qkv: torch.Tensor,
    bias: torch.Tensor | None = None,
    causal: bool = False,
    softmax_scale: float | None = None,
) -> torch.Tensor:
    """Signature of the real kernel entry point: `qkv` is `[batch, seq, 3, heads, head_dim]`."""
    raise NotImplementedError(
        "The Triton FlashAttention kernel of DNABERT-S's remote code is not reproduced by "
        "VirNucPro's stand-in; set bert_layers.flash_attn_qkvpacked_func = None to use the "
        "PyTorch attention path."
    )
