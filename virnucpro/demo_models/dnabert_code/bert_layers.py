"""VirNucPro's own stand-in for DNABERT-S's `bert_layers.py` (MosaicBERT with ALiBi), for tests.

Real DNABERT-S weights cannot be downloaded in CI, so tests load a random-init snapshot
whose model code is this file. It is not a copy of the real code; it is written to
behave like it wherever a caller can tell, including where the real code is awkward:

* loaded through config.json's `auto_map` with `trust_remote_code=True`; the classes
  subclass transformers' `BertPreTrainedModel` (so `config_class` is transformers'
  `BertConfig`) and use the real module and parameter names, so the real
  `pytorch_model.bin` keys would load into them;
* `BertModel.forward(input_ids, token_type_ids, attention_mask, ...)` (in that positional
  order) returns a tuple `(last_hidden_state [batch, seq, hidden], pooled [batch, hidden])`;
  other keyword arguments such as `output_hidden_states` or `return_dict` are swallowed;
* the ALiBi bias is a plain tensor attribute (`encoder.alibi`), not a registered buffer:
  it is not in the state dict, `model.to(dtype)` leaves it in float32, it follows the
  device lazily in `forward`, and it is regrown (with a warning) when a batch is longer
  than its current size (`alibi_starting_size`, 512). It is built like the real one: the
  head slopes on the CPU via the legacy `torch.Tensor` constructor, the distances with
  `torch.arange` on the default device, so building the model under a
  `torch.device("meta")` context (transformers 5's `from_pretrained`) fails the same way;
* the additive attention mask is built in float32 inside `forward`, so with BF16/FP16
  weights and no autocast the attention product mixes dtypes and raises;
* tokens are unpadded to `[total_tokens, hidden]` with the attention mask before the
  encoder and padded back (zeros at padded positions) at the end;
* `flash_attn_qkvpacked_func` is imported from `.flash_attn_triton` inside try/except; the
  plain PyTorch attention runs when that module global is None (no `triton`) or when
  attention dropout is set.
"""

from __future__ import annotations

import math
import warnings

import torch
from einops import rearrange
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_outputs import MaskedLMOutput, SequenceClassifierOutput
from transformers.models.bert.modeling_bert import BertPreTrainedModel

from .bert_padding import pad_input, unpad_input, unpad_input_only

try:
    from .flash_attn_triton import flash_attn_qkvpacked_func
except ImportError:
    flash_attn_qkvpacked_func = None


class BertEmbeddings(nn.Module):
    """Token and token-type embeddings; no position embeddings (ALiBi replaces them)."""

    def __init__(self, config) -> None:
        super().__init__()
        # `config.pad_token_id` is read here, as in the real code (see configuration_bert_v2).
        self.word_embeddings = nn.Embedding(
            config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id
        )
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        summed = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(summed))


class BertUnpadSelfAttention(nn.Module):
    """Multi-head self-attention on unpadded tokens, with an additive (ALiBi + mask) bias."""

    def __init__(self, config) -> None:
        super().__init__()
        self.num_attention_heads = config.num_attention_heads
        self.attention_head_size = config.hidden_size // config.num_attention_heads
        self.p_dropout = config.attention_probs_dropout_prob
        self.dropout = nn.Dropout(self.p_dropout)
        self.Wqkv = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        if flash_attn_qkvpacked_func is None:
            warnings.warn(
                "Unable to import Triton; defaulting MosaicBERT attention implementation to "
                "pytorch (this will reduce throughput when using this model).",
                stacklevel=2,
            )

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        seqlen: int,
        indices: torch.Tensor,
        attn_mask: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        """`[total_tokens, hidden]` in and out; attention itself runs padded to `seqlen`."""
        qkv = pad_input(self.Wqkv(hidden_states), indices, cu_seqlens.numel() - 1, seqlen)
        qkv = rearrange(qkv, "b s (t h d) -> b s t h d", t=3, h=self.num_attention_heads)
        if self.p_dropout or flash_attn_qkvpacked_func is None:
            query, key, value = (part.transpose(1, 2) for part in qkv.unbind(dim=2))
            scores = query @ key.transpose(-1, -2) / math.sqrt(self.attention_head_size)
            # The bias is float32: under BF16/FP16 weights this promotes the scores to float32.
            probs = self.dropout((scores + bias).softmax(dim=-1))
            context = (probs @ value).transpose(1, 2)
        else:
            context = flash_attn_qkvpacked_func(qkv, bias)
        context = unpad_input_only(context, attn_mask.bool())
        return rearrange(context, "n h d -> n (h d)")


class BertSelfOutput(nn.Module):
    """Projection after attention, residual connection and post-LayerNorm."""

    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)) + residual)


class BertUnpadAttention(nn.Module):
    """Self-attention followed by its output block (the real module names: self, output)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.self = BertUnpadSelfAttention(config)
        self.output = BertSelfOutput(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        seqlen: int,
        indices: torch.Tensor,
        attn_mask: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        attended = self.self(hidden_states, cu_seqlens, seqlen, indices, attn_mask, bias)
        return self.output(attended, hidden_states)


class BertGatedLinearUnitMLP(nn.Module):
    """Feed-forward block with a GELU-gated linear unit, residual and post-LayerNorm."""

    def __init__(self, config) -> None:
        super().__init__()
        self.intermediate_size = config.intermediate_size
        self.gated_layers = nn.Linear(config.hidden_size, 2 * config.intermediate_size, bias=False)
        self.act = nn.GELU(approximate="none")
        self.wo = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        gate, value = self.gated_layers(hidden_states).split(self.intermediate_size, dim=-1)
        projected = self.wo(self.dropout(self.act(gate) * value))
        return self.layernorm(projected + hidden_states)


class BertLayer(nn.Module):
    """One encoder layer: attention block then gated MLP block."""

    def __init__(self, config) -> None:
        super().__init__()
        self.attention = BertUnpadAttention(config)
        self.mlp = BertGatedLinearUnitMLP(config)

    def forward(
        self,
        hidden_states: torch.Tensor,
        cu_seqlens: torch.Tensor,
        seqlen: int,
        indices: torch.Tensor,
        attn_mask: torch.Tensor,
        bias: torch.Tensor,
    ) -> torch.Tensor:
        attended = self.attention(hidden_states, cu_seqlens, seqlen, indices, attn_mask, bias)
        return self.mlp(attended)


def _alibi_slopes(n_heads: int) -> list[float]:
    """Per-head ALiBi slopes: the geometric series 2^(-8i/n) of the ALiBi paper.

    For a head count that is not a power of two, the series of the power of two below it,
    then every other slope of the series for twice that power (12 heads: 8 + 4 slopes).
    """
    if math.log2(n_heads).is_integer():
        return [2.0 ** (-8.0 * (i + 1) / n_heads) for i in range(n_heads)]
    lower = 2 ** math.floor(math.log2(n_heads))
    return _alibi_slopes(lower) + _alibi_slopes(2 * lower)[0::2][: n_heads - lower]


class BertEncoder(nn.Module):
    """The layer stack; unpads the batch and owns the ALiBi bias (a plain attribute)."""

    def __init__(self, config) -> None:
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(config) for _ in range(config.num_hidden_layers))
        self.num_attention_heads = config.num_attention_heads
        self.rebuild_alibi_tensor(size=int(config.alibi_starting_size))

    def rebuild_alibi_tensor(self, size: int, device: torch.device | str | None = None) -> None:
        """Set `self.alibi` to the `[1, heads, size, size]` bias `-slope * |i - j|` (float32).

        Slopes come from the legacy constructor (always on the CPU) and are then moved to
        `device`; distances come from `torch.arange` on `device` or the default device.
        """
        slopes = torch.Tensor(_alibi_slopes(self.num_attention_heads)).to(device)
        positions = torch.arange(size, device=device)
        distance = (positions[None, :] - positions[:, None]).abs()
        self.alibi = (slopes[:, None, None] * -distance).unsqueeze(0)
        self._current_alibi_size = size

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """`[batch, seq, hidden]` embeddings and `[batch, seq]` 0/1 mask in, padded states out."""
        # The additive mask is always float32, whatever the dtype of the weights.
        mask_bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        batch, seqlen = hidden_states.shape[:2]
        hidden_states, indices, cu_seqlens, _ = unpad_input(hidden_states, attention_mask.bool())
        if self._current_alibi_size < seqlen:
            warnings.warn(
                f"Increasing alibi size from {self._current_alibi_size} to {seqlen}",
                stacklevel=2,
            )
            self.rebuild_alibi_tensor(size=seqlen, device=hidden_states.device)
        elif self.alibi.device != hidden_states.device:
            self.alibi = self.alibi.to(hidden_states.device)
        bias = mask_bias + self.alibi[:, :, :seqlen, :seqlen]
        for layer in self.layer:
            hidden_states = layer(hidden_states, cu_seqlens, seqlen, indices, attention_mask, bias)
        return pad_input(hidden_states, indices, batch, seqlen)


class BertPooler(nn.Module):
    """Dense + tanh on the first ([CLS]) token."""

    def __init__(self, config) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.activation = nn.Tanh()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden_states[:, 0]))


class BertModel(BertPreTrainedModel):
    """The DNABERT encoder; `AutoModel` in config.json's `auto_map`."""

    def __init__(self, config, add_pooling_layer: bool = True) -> None:
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embeddings.word_embeddings = value

    def forward(
        self,
        input_ids: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(last_hidden_state, pooled_output)`; unknown keyword arguments are ignored."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), attention_mask)
        pooled_output = self.pooler(sequence_output) if self.pooler is not None else None
        return sequence_output, pooled_output


class BertLMPredictionHead(nn.Module):
    """Dense + activation + LayerNorm, then a decoder sharing the word-embedding matrix."""

    def __init__(self, config, embedding_weights: nn.Parameter) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.transform_act_fn = ACT2FN[config.hidden_act]
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=1e-12)
        self.decoder = nn.Linear(embedding_weights.size(1), embedding_weights.size(0))
        self.decoder.weight = embedding_weights

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        transformed = self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))
        return self.decoder(transformed)


class BertOnlyMLMHead(nn.Module):
    """Wrapper giving the real parameter names (`cls.predictions.*`)."""

    def __init__(self, config, embedding_weights: nn.Parameter) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config, embedding_weights)

    def forward(self, sequence_output: torch.Tensor) -> torch.Tensor:
        return self.predictions(sequence_output)


class BertForMaskedLM(BertPreTrainedModel):
    """Encoder with the masked-language-model head; `AutoModelForMaskedLM` in `auto_map`."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.cls = BertOnlyMLMHead(config, self.bert.embeddings.word_embeddings.weight)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedLMOutput:
        """Vocabulary logits for every position, `[batch, seq, vocab]`."""
        sequence_output, _ = self.bert(input_ids, token_type_ids, attention_mask)
        return MaskedLMOutput(logits=self.cls(sequence_output), hidden_states=sequence_output)


class BertForSequenceClassification(BertPreTrainedModel):
    """Encoder with a linear head on the pooled output; in `auto_map` as well."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.bert = BertModel(config)
        dropout = config.classifier_dropout
        self.dropout = nn.Dropout(config.hidden_dropout_prob if dropout is None else dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        **kwargs,
    ) -> SequenceClassifierOutput:
        """Class logits `[batch, num_labels]` from the pooled [CLS] state."""
        sequence_output, pooled_output = self.bert(input_ids, token_type_ids, attention_mask)
        logits = self.classifier(self.dropout(pooled_output))
        return SequenceClassifierOutput(logits=logits, hidden_states=sequence_output)
