"""Tiny, local, randomly initialised models for the encoder tests (no network, a few KB each)."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = [
    "the",
    "a",
    "an",
    "of",
    "and",
    "for",
    "with",
    "to",
    "in",
    "on",
    "is",
    "it",
    "this",
    "that",
    "my",
    "i",
    "want",
    "buy",
    "red",
    "blue",
    "black",
    "green",
    "pen",
    "pens",
    "ink",
    "paper",
    "printer",
    "office",
    "desk",
    "chair",
    "lamp",
    "stapler",
    "notebook",
    "star",
    "wars",
    "space",
    "film",
    "movie",
    "science",
    "fiction",
    "love",
    "sense",
    "sensibility",
    "romance",
    "query",
    "passage",
    "hello",
    "world",
    "more",
    "text",
    "long",
    "short",
    "item",
    "user",
    "review",
    "great",
    "bad",
    "good",
    "cheap",
    "fast",
    "slow",
]
CHINESE = list("我想买一支红色的钢笔蓝黑纸打印机办公桌椅子台灯好便宜快")
PUNCT = list(".,!?:;'\"-()")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_tiny_bert(directory: Path, seed: int = 0) -> Path:
    """A 2-layer, 32-wide BERT with a word + Chinese-character vocab, saved as a Hugging Face model."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    directory.mkdir(parents=True, exist_ok=True)
    vocab = SPECIAL + WORDS + CHINESE + PUNCT
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(directory / "vocab.txt"), do_lower_case=True, tokenize_chinese_chars=True)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(str(directory))
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(str(directory), safe_serialization=True)
    return directory


def write_st_layout(directory: Path, pooling: str = "mean", max_seq_length: int = 48) -> Path:
    """Turn a Hugging Face model directory into a sentence-transformers one (Transformer, Pooling, Normalize)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": False,
                "pooling_mode_mean_sqrt_len_tokens": False,
            }
        )
    )
    (directory / "2_Normalize").mkdir(exist_ok=True)
    return directory
