"""Write a small random-init DNABERT-S snapshot directory, laid out like the real one.

The real `zhihan1996/DNABERT-S` weights cannot be downloaded in CI, yet the code that
loads them must be tested the way users load them:
`AutoTokenizer.from_pretrained(dir, trust_remote_code=True)` and
`AutoModel.from_pretrained(dir, trust_remote_code=True)`, through config.json's
`auto_map`. `write_dnabert_snapshot` writes such a directory: config.json, the model
code from `dnabert_code/` (VirNucPro's own stand-in reproducing the remote code's traits:
ALiBi as a plain tensor attribute, float32 attention mask, unpadding, the optional Triton
module), a BPE tokenizer in the real files' format and seeded random weights in
`pytorch_model.bin`, the file the real repository ships.

Two variants of the remote code exist upstream and both are reproduced:

* `"dnabert-s"`: DNABERT-S's files; `configuration_bert.py` subclasses transformers'
  `BertConfig` and config.json sets `pad_token_id` (0, although the tokenizer's [PAD] is 3);
* `"dnabert-2"`: DNABERT-2-117M's current files; `configuration_bert.py` subclasses
  `PretrainedConfig` and config.json has neither `pad_token_id` nor `architectures`, so
  the model code's read of `config.pad_token_id` fails unless the caller sets it.
"""

from __future__ import annotations

import json
import math
import random
import shutil
from pathlib import Path

import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

CODE_DIR = Path(__file__).with_name("dnabert_code")
# Code files copied as they are; the configuration file depends on the variant.
SHARED_CODE_FILES = ("bert_layers.py", "bert_padding.py", "flash_attn_triton.py")
CONFIG_CODE_FILES = {
    "dnabert-s": "configuration_bert.py",
    "dnabert-2": "configuration_bert_v2.py",
}
# The real tokenizer's special tokens, in its id order: [UNK]=0 [CLS]=1 [SEP]=2 [PAD]=3 [MASK]=4.
SPECIAL_TOKENS = ("[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]")
AUTO_MAP = {
    "AutoConfig": "configuration_bert.BertConfig",
    "AutoModel": "bert_layers.BertModel",
    "AutoModelForMaskedLM": "bert_layers.BertForMaskedLM",
    "AutoModelForSequenceClassification": "bert_layers.BertForSequenceClassification",
}
# The real model handles 512 tokens before it regrows its ALiBi bias.
MAX_TOKENS = 512


def write_dnabert_snapshot(
    directory: Path,
    *,
    variant: str = "dnabert-s",
    seed: int = 0,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 256,
) -> Path:
    """Write a complete snapshot of `variant` to `directory` (created if needed); return it.

    The real model is `hidden_size=768, num_layers=12, num_heads=12, vocab_size=4096`;
    the defaults give a model that runs in milliseconds on a CPU. `vocab_size` is the
    BPE target; config.json records the size actually reached. The same arguments give
    the same files.
    """
    if variant not in CONFIG_CODE_FILES:
        raise ValueError(
            f"unknown variant {variant!r}; expected one of {sorted(CONFIG_CODE_FILES)}"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    tokenizer = _train_tokenizer(vocab_size, seed)
    tokenizer.save(str(directory / "tokenizer.json"))
    _write_json(directory / "tokenizer_config.json", _tokenizer_config())
    _write_json(directory / "special_tokens_map.json", _special_tokens_map())

    config = _model_config(variant, tokenizer.get_vocab_size(), hidden_size, num_layers, num_heads)
    _write_json(directory / "config.json", config)
    for name in SHARED_CODE_FILES:
        shutil.copyfile(CODE_DIR / name, directory / name)
    shutil.copyfile(CODE_DIR / CONFIG_CODE_FILES[variant], directory / "configuration_bert.py")

    torch.save(_random_weights(config, seed), directory / "pytorch_model.bin")
    return directory


def _train_tokenizer(vocab_size: int, seed: int) -> Tokenizer:
    """A BPE tokenizer trained on a fixed random DNA corpus, in the real tokenizer's shape.

    Like DNABERT-2's: no normalizer (upper case only), whitespace pre-tokenizer, BPE with
    `[UNK]`, and `[CLS] ... [SEP]` added around every sequence. `N` is in the initial
    alphabet so any ACGTN string tokenizes without `[UNK]`.
    """
    rng = random.Random(seed)
    corpus = ["".join(rng.choices("ACGT", k=1000)) for _ in range(100)]
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=list("ACGTN"),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    return tokenizer


def _special_tokens_map() -> dict[str, str]:
    names = ("unk_token", "cls_token", "sep_token", "pad_token", "mask_token")
    return dict(zip(names, SPECIAL_TOKENS, strict=True))


def _tokenizer_config() -> dict[str, object]:
    """tokenizer_config.json as the real snapshot has it: a plain fast tokenizer."""
    return {
        **_special_tokens_map(),
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": MAX_TOKENS,
        "padding_side": "right",
        "clean_up_tokenization_spaces": True,
    }


def _model_config(
    variant: str, vocab_size: int, hidden_size: int, num_layers: int, num_heads: int
) -> dict[str, object]:
    """config.json with the real file's keys and values, scaled to the requested size."""
    config: dict[str, object] = {
        "_name_or_path": "zhihan1996/DNABERT-2-117M",
        "alibi_starting_size": MAX_TOKENS,
        "architectures": ["BertModel"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": AUTO_MAP,
        "classifier_dropout": None,
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": hidden_size,
        "initializer_range": 0.02,
        "intermediate_size": 4 * hidden_size,
        "layer_norm_eps": 1e-12,
        "max_position_embeddings": MAX_TOKENS,
        "model_type": "bert",
        "num_attention_heads": num_heads,
        "num_hidden_layers": num_layers,
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "torch_dtype": "float32",
        "transformers_version": "4.28.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    if variant == "dnabert-2":
        del config["architectures"], config["pad_token_id"]
    return config


def _random_weights(config: dict[str, object], seed: int) -> dict[str, torch.Tensor]:
    """Seeded weights for every key of the real `BertModel` state dict (with pooler).

    Built from the key names and shapes alone, so loading them checks that the model code
    declares exactly these parameters. Scales are realistic enough for wrong math to show:
    Xavier-uniform matrices, unit-scale embeddings, LayerNorm gains away from 1 and
    non-zero biases.
    """
    hidden = int(config["hidden_size"])
    inner = int(config["intermediate_size"])
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (int(config["vocab_size"]), hidden),
        "embeddings.token_type_embeddings.weight": (int(config["type_vocab_size"]), hidden),
        "embeddings.LayerNorm.weight": (hidden,),
        "embeddings.LayerNorm.bias": (hidden,),
    }
    for layer in range(int(config["num_hidden_layers"])):
        prefix = f"encoder.layer.{layer}."
        shapes |= {
            prefix + "attention.self.Wqkv.weight": (3 * hidden, hidden),
            prefix + "attention.self.Wqkv.bias": (3 * hidden,),
            prefix + "attention.output.dense.weight": (hidden, hidden),
            prefix + "attention.output.dense.bias": (hidden,),
            prefix + "attention.output.LayerNorm.weight": (hidden,),
            prefix + "attention.output.LayerNorm.bias": (hidden,),
            prefix + "mlp.gated_layers.weight": (2 * inner, hidden),
            prefix + "mlp.wo.weight": (hidden, inner),
            prefix + "mlp.wo.bias": (hidden,),
            prefix + "mlp.layernorm.weight": (hidden,),
            prefix + "mlp.layernorm.bias": (hidden,),
        }
    shapes |= {"pooler.dense.weight": (hidden, hidden), "pooler.dense.bias": (hidden,)}

    generator = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in shapes.items():
        tensor = torch.empty(shape)
        if "embeddings" in name and len(shape) == 2:
            tensor.normal_(0.0, 1.0, generator=generator)
        elif name.split(".")[-2].lower() == "layernorm":
            mean = 1.0 if name.endswith("weight") else 0.0
            tensor.normal_(mean, 0.1, generator=generator)
        elif len(shape) == 1:
            tensor.normal_(0.0, 0.02, generator=generator)
        else:
            bound = math.sqrt(6 / sum(shape))
            tensor.uniform_(-bound, bound, generator=generator)
        weights[name] = tensor
    return weights


def _write_json(path: Path, content: dict[str, object]) -> None:
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
