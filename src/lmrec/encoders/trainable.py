"""A text encoder that can be fine-tuned, fully or with LoRA adapters, and saved with a recommender.

`TrainableTextEncoder` is a ``torch.nn.Module``: ``forward`` takes a tokenised batch and returns unit
vectors with gradients, so any loss over embeddings trains it. It is also a `TextEncoder`
(``encode`` runs without gradients), whose name changes with its tuned weights.

Saved layout (no pickles)::

    config.json              base model, its content hash, pooling, length, prefixes, LoRA settings
    adapter.safetensors      LoRA: the adapter weights only
    model/                   full fine-tune: the whole transformer and tokenizer (safetensors)
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from lmrec.encoders.base import check_encode_args
from lmrec.encoders.device import resolve_device
from lmrec.encoders.hf import model_max_length, pool_torch, source_fingerprint
from lmrec.encoders.model_files import (
    default_model_path,
    default_pooling,
    detect_prefixes,
    encoder_name,
    resolve_model,
)

# transformers and peft are imported where used: transformers is heavy, peft is needed only for LoRA.

__all__ = ["TrainableTextEncoder"]

log = logging.getLogger(__name__)

_FORMAT = "lmrec.trainable_text_encoder"


class TrainableTextEncoder(nn.Module):
    """A Hugging Face transformer with pooling, in PyTorch, ready to fine-tune.

    Args:
        model: local directory or hub name (``None``: packaged all-MiniLM-L6-v2).
        pooling: ``"auto"``, ``"mean"`` or ``"cls"``.
        max_seq_length: tokens per text (default: the model's limit).
        query_prefix, passage_prefix: override the family's prefixes (``""`` for none).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"`` (`lmrec.encoders.device`);
            ``.to(device)`` moves the encoder later, and tokenised batches follow it.

    Attributes:
        mode_: ``None`` until `train_mode` is called, then ``"full"`` or ``"lora"``.
        lora_settings_: the LoRA hyper-parameters, when ``mode_ == "lora"``.
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        pooling: str = "auto",
        max_seq_length: int | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        device: str = "cpu",
    ) -> None:
        super().__init__()
        from transformers import AutoModel, AutoTokenizer

        self.source = resolve_model(model)
        self.source.check_plain_pooling()
        self.tokenizer = AutoTokenizer.from_pretrained(self.source.hf_location)
        self.model = AutoModel.from_pretrained(self.source.hf_location).to(resolve_device(device))
        self.model.eval()
        self.pooling = default_pooling(self.source) if pooling == "auto" else pooling
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'auto', 'mean' or 'cls', got {pooling!r}")
        self.max_length = max_seq_length or model_max_length(self.source, self.tokenizer, self.model.config)
        self.prefixes = detect_prefixes(self.source.model_id, query_prefix, passage_prefix)
        self.dim = int(self.model.config.hidden_size)
        self.base_fingerprint = source_fingerprint(self.source)
        self.base_name = encoder_name(
            self.source.model_id,
            self.base_fingerprint,
            pooling=self.pooling,
            max_length=self.max_length,
            prefixes=self.prefixes,
            precision="fp32",
        )
        self.mode_: str | None = None
        self.lora_settings_: dict[str, Any] | None = None

    # ------------------------------------------------------------------ training
    def train_mode(
        self,
        lora: bool = False,
        r: int = 8,
        alpha: int = 16,
        dropout: float = 0.0,
        target_modules: list[str] | None = None,
    ) -> TrainableTextEncoder:
        """Make the encoder trainable: every weight (``lora=False``) or LoRA adapters only.

        Args:
            lora: add LoRA adapters (peft) and freeze the base weights.
            r: adapter rank.
            alpha: LoRA scaling numerator (scale ``alpha / r``).
            dropout: dropout on the adapter input.
            target_modules: module names to adapt (default: peft's choice for the architecture,
                ``["query", "value"]`` for BERT).

        Returns:
            ``self``, in ``train()`` mode.
        """
        if lora:
            if self.mode_ == "lora":
                raise ValueError("LoRA adapters are already attached; train_mode(lora=True) was called before")
            if self.mode_ == "full":
                raise ValueError("the encoder is in full fine-tuning mode; LoRA cannot be added on top")
            if r < 1:
                raise ValueError(f"LoRA rank r must be >= 1, got {r}")
            from peft import LoraConfig, get_peft_model

            config = LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, bias="none")
            self.model = get_peft_model(self.model, config)
            self.lora_settings_ = {
                "r": r,
                "alpha": alpha,
                "dropout": dropout,
                "target_modules": sorted(self.model.peft_config["default"].target_modules),
            }
            self.mode_ = "lora"
        else:
            if self.mode_ == "lora":
                raise ValueError("the encoder has LoRA adapters; full fine-tuning needs a fresh encoder")
            for p in self.model.parameters():
                p.requires_grad_(True)
            self.mode_ = "full"
        self.train()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimiser should update."""
        return [p for p in self.parameters() if p.requires_grad]

    def tokenize(self, texts: Sequence[str], kind: str = "passage") -> dict[str, torch.Tensor]:
        """Prefixed, padded, truncated batch on the encoder's device: (batch, seq_len) tensors."""
        prefix = self.prefixes.for_kind(kind)
        batch = self.tokenizer(
            [prefix + (t or "") for t in texts],
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in batch.items()}

    @property
    def device(self) -> torch.device:
        """Where the transformer's weights are now (``.to(...)`` moves them)."""
        return next(self.model.parameters()).device

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **extra: torch.Tensor) -> torch.Tensor:
        """(batch, seq_len) token ids and mask -> (batch, dim) unit vectors, with gradients in train mode."""
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
        return pool_torch(hidden, attention_mask, self.pooling)  # (batch, dim)

    # ------------------------------------------------------------------ TextEncoder
    @property
    def name(self) -> str:
        """The base model's name, plus a hash of the tuned weights once `train_mode` was called."""
        if self.mode_ is None:
            return self.base_name
        digest = hashlib.sha256()
        for key, tensor in sorted(self._tuned_state().items()):
            digest.update(key.encode() + b"\0")
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return f"{self.base_name}/{self.mode_}-{digest.hexdigest()[:12]}"

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """Encode without gradients in eval mode (the train/eval mode is restored afterwards)."""
        check_encode_args(texts, batch_size)
        self.prefixes.for_kind(kind)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        order = np.argsort([-len(t or "") for t in texts], kind="stable")
        was_training = self.training
        self.eval()
        try:
            starts = range(0, len(texts), batch_size)
            if show_progress:
                starts = tqdm(starts, desc="encode", unit="batch")
            with torch.no_grad():
                for start in starts:
                    idx = order[start : start + batch_size]
                    vecs = self(**self.tokenize([texts[i] for i in idx], kind=kind))
                    out[idx] = vecs.float().cpu().numpy()
        finally:
            self.train(was_training)
        return out

    # ------------------------------------------------------------------ persistence
    def _tuned_state(self) -> dict[str, torch.Tensor]:
        if self.mode_ == "lora":
            from peft import get_peft_model_state_dict

            return get_peft_model_state_dict(self.model)
        return self.model.state_dict()

    def _config(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "version": 1,
            "base_model": None if self.source.location == str(_packaged()) else self.source.location,
            "base_model_id": self.source.model_id,
            "base_fingerprint": self.base_fingerprint,
            "base_name": self.base_name,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "query_prefix": self.prefixes.query,
            "passage_prefix": self.prefixes.passage,
            "mode": self.mode_,
            "lora": self.lora_settings_,
        }

    def save(self, directory: str | Path) -> None:
        """Write ``config.json`` and the tuned weights: the LoRA adapter only, or the whole model."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self.mode_ == "lora":
            state = {k: v.detach().cpu().contiguous() for k, v in self._tuned_state().items()}
            save_file(state, str(directory / "adapter.safetensors"))
        else:
            self.model.save_pretrained(str(directory / "model"), safe_serialization=True)
            self.tokenizer.save_pretrained(str(directory / "model"))
        (directory / "config.json").write_text(json.dumps(self._config(), indent=2, ensure_ascii=False))

    @classmethod
    def load(
        cls, directory: str | Path, *, base_model: str | Path | None = None, device: str = "cpu"
    ) -> TrainableTextEncoder:
        """Rebuild a saved encoder.

        Args:
            directory: what `save` wrote.
            base_model: where the base model is now, for a LoRA adapter (default: where it was).
            device: torch device.

        Raises:
            ValueError: the directory is not a saved encoder, or the base model's content hash differs
                from the one the adapter was trained on.
        """
        directory = Path(directory)
        config_file = directory / "config.json"
        if not config_file.exists():
            raise ValueError(f"{str(directory)!r} holds no saved text encoder (config.json missing)")
        cfg = json.loads(config_file.read_text())
        if cfg.get("format") != _FORMAT:
            raise ValueError(f"{str(config_file)!r} is not a saved TrainableTextEncoder (format {cfg.get('format')!r})")
        kwargs = dict(
            max_seq_length=cfg["max_length"],
            query_prefix=cfg["query_prefix"],
            passage_prefix=cfg["passage_prefix"],
            device=device,
        )
        if cfg["mode"] == "lora":
            from peft import set_peft_model_state_dict

            encoder = cls(base_model if base_model is not None else cfg["base_model"], pooling=cfg["pooling"], **kwargs)
            if encoder.base_fingerprint != cfg["base_fingerprint"]:
                raise ValueError(
                    f"base model {encoder.source.location!r} has content hash {encoder.base_fingerprint}, "
                    f"but the adapter was trained on {cfg['base_fingerprint']}"
                )
            lora = cfg["lora"]
            encoder.train_mode(
                lora=True,
                r=lora["r"],
                alpha=lora["alpha"],
                dropout=lora["dropout"],
                target_modules=lora["target_modules"],
            )
            adapter = load_file(str(directory / "adapter.safetensors"), device=str(encoder.device))
            set_peft_model_state_dict(encoder.model, adapter)
        else:
            encoder = cls(directory / "model", pooling=cfg["pooling"], **kwargs)
            encoder.mode_ = cfg["mode"]
            encoder.base_fingerprint = cfg["base_fingerprint"]
            encoder.base_name = cfg["base_name"]
        encoder.eval()
        return encoder

    def export_merged(self, directory: str | Path) -> Path:
        """Write a plain sentence-transformers model directory with LoRA merged in.

        The result loads with ``make_text_encoder(directory, backend=...)`` on any backend (ONNX int8
        for serving included) and gives the same vectors as ``encode`` (prefixes must be passed again
        when the directory name no longer tells the model family).
        """
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        model = self.model
        if self.mode_ == "lora":
            model = copy.deepcopy(self.model).merge_and_unload()
        model.save_pretrained(str(directory), safe_serialization=True)
        self.tokenizer.save_pretrained(str(directory))
        modules = [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
            {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
            {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
        ]
        (directory / "modules.json").write_text(json.dumps(modules, indent=2))
        (directory / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": self.max_length}))
        (directory / "1_Pooling").mkdir(exist_ok=True)
        pooling_cfg = {
            "word_embedding_dimension": self.dim,
            "pooling_mode_cls_token": self.pooling == "cls",
            "pooling_mode_mean_tokens": self.pooling == "mean",
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        }
        (directory / "1_Pooling" / "config.json").write_text(json.dumps(pooling_cfg, indent=2))
        (directory / "2_Normalize").mkdir(exist_ok=True)
        return directory


def _packaged() -> Path:
    return default_model_path()
