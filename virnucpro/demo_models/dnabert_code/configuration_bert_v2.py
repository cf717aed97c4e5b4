"""VirNucPro's own stand-in for DNABERT-2-117M's current `configuration_bert.py`, for tests.

Copied into a snapshot under the name `configuration_bert.py` (the name config.json's
`auto_map` expects). Reproduces the trait of that variant: the remote `BertConfig`
subclasses `PretrainedConfig` directly and declares the BERT fields itself, but not
`pad_token_id`. With a config.json that has no `pad_token_id` either, transformers 5
configs have no such attribute, so model code reading `config.pad_token_id` fails with
`AttributeError` unless the caller sets it.
"""

from __future__ import annotations

from transformers import PretrainedConfig


class BertConfig(PretrainedConfig):
    """BERT fields and the ALiBi starting size on a bare `PretrainedConfig`."""

    model_type = "bert"

    def __init__(
        self,
        vocab_size: int = 4096,
        hidden_size: int = 768,
        num_hidden_layers: int = 12,
        num_attention_heads: int = 12,
        intermediate_size: int = 3072,
        hidden_act: str = "gelu",
        hidden_dropout_prob: float = 0.1,
        attention_probs_dropout_prob: float = 0.0,
        max_position_embeddings: int = 512,
        type_vocab_size: int = 2,
        initializer_range: float = 0.02,
        layer_norm_eps: float = 1e-12,
        classifier_dropout: float | None = None,
        alibi_starting_size: int = 512,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.max_position_embeddings = max_position_embeddings
        self.type_vocab_size = type_vocab_size
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.classifier_dropout = classifier_dropout
        self.alibi_starting_size = alibi_starting_size
