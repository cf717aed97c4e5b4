"""VirNucPro's own stand-in for DNABERT-S's `bert_padding.py`, written for tests.

It reproduces the trait of the real remote code that callers can observe: the tokens
of a padded batch are flattened to `[total_tokens, ...]` using the attention mask, run
through the encoder without padding, and scattered back into a zero-filled
`[batch, seq, ...]` tensor at the end (so padded positions of the output are exactly 0).
Not a copy of the real file: only its behaviour is reproduced.
"""

from __future__ import annotations

import torch


def unpad_input(
    hidden_states: torch.Tensor, attention_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Keep only the positions where `attention_mask` is set.

    Returns the kept rows `[total_tokens, ...]`, their flat indices into `batch * seq`,
    the cumulative sequence lengths `[batch + 1]` (int32, starting at 0) and the longest
    sequence length in the batch.
    """
    lengths = attention_mask.sum(dim=-1, dtype=torch.int32)
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    cu_seqlens = torch.zeros(lengths.numel() + 1, dtype=torch.int32, device=lengths.device)
    cu_seqlens[1:] = torch.cumsum(lengths, dim=0)
    return unpad_input_only(hidden_states, attention_mask), indices, cu_seqlens, int(lengths.max())


def unpad_input_only(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Like `unpad_input`, but only the kept rows."""
    indices = torch.nonzero(attention_mask.flatten(), as_tuple=False).flatten()
    return index_first_axis(hidden_states.flatten(0, 1), indices)


def index_first_axis(values: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Rows `indices` of `values` along its first axis."""
    return values.index_select(0, indices)


def index_put_first_axis(values: torch.Tensor, indices: torch.Tensor, length: int) -> torch.Tensor:
    """A zero tensor with `length` rows holding `values` at rows `indices`."""
    out = values.new_zeros((length, *values.shape[1:]))
    out[indices] = values
    return out


def pad_input(
    hidden_states: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int
) -> torch.Tensor:
    """Undo `unpad_input`: `[total_tokens, ...]` back to `[batch, seqlen, ...]`, zeros elsewhere."""
    flat = index_put_first_axis(hidden_states, indices, batch * seqlen)
    return flat.unflatten(0, (batch, seqlen))
