"""VirNucPro's own stand-in for DNABERT-S's `configuration_bert.py`, written for tests.

Reproduces the trait of the DNABERT-S variant: the remote `BertConfig` subclasses
transformers' `BertConfig`, so every standard BERT field exists with BERT's defaults
(`pad_token_id` among them) and only `alibi_starting_size` is added, with attention
dropout off by default.
"""

from __future__ import annotations

from transformers import BertConfig as TransformersBertConfig


class BertConfig(TransformersBertConfig):
    """Transformers' BERT configuration plus the starting size of the ALiBi bias."""

    def __init__(
        self,
        alibi_starting_size: int = 512,
        attention_probs_dropout_prob: float = 0.0,
        **kwargs,
    ) -> None:
        super().__init__(attention_probs_dropout_prob=attention_probs_dropout_prob, **kwargs)
        self.alibi_starting_size = alibi_starting_size
