"""ESM-2 forward over packed sequences (SPEC §3), written to read like the architecture.

The module tree and parameter names match fair-esm's `esm.model.esm2.ESM2`, so a
fair-esm state dict loads with a plain `load_state_dict` (the LM and contact heads are
left out: we only need representations). What differs from fair-esm is the batch
layout: sequences are packed end to end into one `[T, dim]` tensor with cumulative
sequence lengths `cu_seqlens`, so no compute goes to padding. The two places that
depend on the packing are kept apart and named:

- `attention(q, k, v, cu_seqlens, max_len)`: one entry point, three backends chosen at
  run time (varlen flash kernel, nested-jagged SDPA, padded SDPA on the CPU).
- `rotary_cos_sin`: positions restart at 0 for every packed sequence; cos/sin in FP32.

Inference-only behaviour reproduced from fair-esm 2.0.0 for inputs without `<mask>`:
embed scale 1; token-dropout rescale `x * (1 - 0.15 * 0.8) / (1 - 0)` (the observed mask
ratio is 0 because the tokeniser never emits `<mask>`); padding embeddings zeroed;
pre-LayerNorm layers with erf GELU; `emb_layer_norm_after` at the end.

fair-esm multiplies q by head_dim**-0.5 before the rotary; rotation is linear, so we
let the attention kernels apply the same default scale after it instead, which keeps
one calling convention across torch versions of `varlen_attn`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# fair-esm's "ESM-1b" alphabet, which all ESM-2 models use (index = token id).
ALPHABET: tuple[str, ...] = (
    "<cls>", "<pad>", "<eos>", "<unk>",
    "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K", "Q", "N", "F", "Y",
    "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-",
    "<null_1>", "<mask>",
)  # fmt: skip
CLS_IDX = ALPHABET.index("<cls>")
PAD_IDX = ALPHABET.index("<pad>")
EOS_IDX = ALPHABET.index("<eos>")
UNKNOWN_RESIDUE_IDX = ALPHABET.index("X")

# Trained context: BOS + 1022 residues + EOS.
MAX_POSITIONS = 1024
MAX_RESIDUES = MAX_POSITIONS - 2

# ESM-2 was trained masking 15% of tokens, 80% of those with <mask>; fair-esm rescales
# embeddings by this factor at inference too.
_MASK_RATIO_TRAIN = 0.15 * 0.8


@dataclass(frozen=True)
class EsmConfig:
    """Architecture of one ESM-2 size; everything else follows from these three."""

    num_layers: int
    embed_dim: int
    attention_heads: int

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.attention_heads

    def __post_init__(self) -> None:
        if self.embed_dim % self.attention_heads:
            raise ValueError(
                f"embed_dim {self.embed_dim} is not divisible by {self.attention_heads} heads"
            )


# ---------------------------------------------------------------------------------------
# Attention over packed sequences
# ---------------------------------------------------------------------------------------


def _find_varlen_attn():
    """torch's varlen flash-attention entry point (torch ≥ 2.10), or None where absent.

    Only the seven positional arguments common to every released signature are used.
    """
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    return varlen_attn


# Looked up once at import, so compiled code sees a constant rather than a call.
_VARLEN_ATTN = _find_varlen_attn()


def select_attention_backend(device: torch.device, dtype: torch.dtype) -> str:
    """Pick the fastest exact backend for this device and dtype.

    `varlen`: flash kernel on packed tensors (CUDA, half precision, torch ≥ 2.10).
    `nested`: SDPA on a nested-jagged tensor (CUDA otherwise, e.g. FP32).
    `padded`: unpack to [B, Lmax] and mask padding keys (CPU; no fused varlen kernel).
    """
    if device.type != "cuda":
        return "padded"
    if dtype in (torch.float16, torch.bfloat16) and _VARLEN_ATTN is not None:
        return "varlen"
    return "nested"


def varlen_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_len: int
) -> torch.Tensor:
    """Flash attention directly on packed `[T, H, D]` tensors."""
    cu = cu_seqlens.to(torch.int32)
    return _VARLEN_ATTN(q, k, v, cu, cu, max_len, max_len)


def nested_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_len: int
) -> torch.Tensor:
    """SDPA on nested-jagged views of the packed tensors (no copy to a padded layout)."""
    offsets = cu_seqlens.to(torch.int64)

    def jagged(x: torch.Tensor) -> torch.Tensor:
        nt = torch.nested.nested_tensor_from_jagged(x, offsets=offsets, max_seqlen=max_len)
        return nt.transpose(1, 2)  # [B, H, j, D]

    out = F.scaled_dot_product_attention(jagged(q), jagged(k), jagged(v))
    return out.transpose(1, 2).values()


def padded_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_len: int
) -> torch.Tensor:
    """Unpack to `[B, Lmax]`, run SDPA with a key-padding mask, and pack again."""
    lengths = cu_seqlens[1:] - cu_seqlens[:-1]
    total = q.shape[0]
    segment = torch.repeat_interleave(
        torch.arange(len(lengths), device=q.device), lengths, output_size=total
    )
    position = torch.arange(total, device=q.device) - cu_seqlens[segment]

    def unpack(x: torch.Tensor) -> torch.Tensor:
        padded = x.new_zeros(len(lengths), max_len, *x.shape[1:])
        padded[segment, position] = x
        return padded.transpose(1, 2)  # [B, H, Lmax, D]

    key_valid = torch.arange(max_len, device=q.device)[None, :] < lengths[:, None]
    out = F.scaled_dot_product_attention(
        unpack(q), unpack(k), unpack(v), attn_mask=key_valid[:, None, None, :]
    )
    return out.transpose(1, 2)[segment, position]


_BACKENDS = {"varlen": varlen_attention, "nested": nested_attention, "padded": padded_attention}


def attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_len: int
) -> torch.Tensor:
    """Softmax(q kᵀ / √D) v within each packed sequence; q, k, v are `[T, H, D]`.

    `cu_seqlens` (`[B + 1]`, starting at 0, ending at T) marks where sequences start;
    `max_len` bounds the longest one (it may be larger, e.g. rounded for compile).
    """
    backend = select_attention_backend(q.device, q.dtype)
    return _BACKENDS[backend](q, k, v, cu_seqlens, max_len)


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------


def rotary_cos_sin(positions: torch.Tensor, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary (RoFormer) cos/sin tables `[T, 1, D]` for per-token positions, in FP32.

    Same frequencies as fair-esm's `RotaryEmbedding`; computed here, not stored as a
    buffer, so casting the model to BF16 can never lower their precision.
    """
    exponents = torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim
    inv_freq = 1.0 / (10000**exponents)
    freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    angles = torch.cat((freqs, freqs), dim=-1)[:, None, :]  # broadcast over heads
    return angles.cos(), angles.sin()


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `[T, H, D]` q or k by its position, in FP32, returning x's dtype."""
    x32 = x.to(torch.float32)
    first, second = x32.chunk(2, dim=-1)
    rotated = torch.cat((-second, first), dim=-1)
    return (x32 * cos + rotated * sin).to(x.dtype)


class SelfAttention(nn.Module):
    """Multi-head self-attention with rotary q/k, over packed sequences."""

    def __init__(self, config: EsmConfig):
        super().__init__()
        dim = config.embed_dim
        self.heads = config.attention_heads
        self.head_dim = config.head_dim
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cu_seqlens: torch.Tensor,
        max_len: int,
    ) -> torch.Tensor:
        shape = (x.shape[0], self.heads, self.head_dim)
        q = self.q_proj(x).view(shape)
        k = self.k_proj(x).view(shape)
        v = self.v_proj(x).view(shape)
        q, k = apply_rotary(q, *rotary), apply_rotary(k, *rotary)
        out = attention(q, k, v, cu_seqlens, max_len)
        return self.out_proj(out.reshape(x.shape))


class TransformerLayer(nn.Module):
    """Pre-LayerNorm block: attention then erf-GELU feed-forward, each with a residual."""

    def __init__(self, config: EsmConfig):
        super().__init__()
        dim = config.embed_dim
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.self_attn = SelfAttention(config)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        rotary: tuple[torch.Tensor, torch.Tensor],
        cu_seqlens: torch.Tensor,
        max_len: int,
    ) -> torch.Tensor:
        x = x + self.self_attn(self.self_attn_layer_norm(x), rotary, cu_seqlens, max_len)
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x)), approximate="none"))


class Esm2(nn.Module):
    """ESM-2 encoder without heads: packed tokens in, last-layer representations out."""

    def __init__(self, config: EsmConfig):
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(len(ALPHABET), config.embed_dim, padding_idx=PAD_IDX)
        self.layers = nn.ModuleList(TransformerLayer(config) for _ in range(config.num_layers))
        self.emb_layer_norm_after = nn.LayerNorm(config.embed_dim)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor,
        cu_seqlens: torch.Tensor,
        max_len: int,
    ) -> torch.Tensor:
        """`tokens`, `positions`: `[T]`; returns `[T, dim]` after `emb_layer_norm_after`.

        `positions` count from 0 at each sequence's BOS; `cu_seqlens` as in `attention`.
        """
        x = self.embed_tokens(tokens) * (1 - _MASK_RATIO_TRAIN)
        x = x * (tokens != PAD_IDX).unsqueeze(-1).to(x.dtype)
        rotary = rotary_cos_sin(positions, self.config.head_dim)
        for layer in self.layers:
            x = layer(x, rotary, cu_seqlens, max_len)
        return self.emb_layer_norm_after(x)

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())
