"""ONNX Runtime backend: the transformer exported once to ONNX, optionally quantised to int8.

Export and quantisation happen once per model content: the files are cached under
``export_dir/{model id}-{content hash}/`` and reused by later runs. Pooling and normalisation run in
numpy exactly as in the PyTorch backend (`lmrec.encoders.hf.pool_numpy`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Literal

import numpy as np

from lmrec.encoders.hf import TokenEncoder, model_max_length, source_fingerprint
from lmrec.encoders.model_files import (
    ModelSource,
    default_pooling,
    detect_prefixes,
    encoder_name,
    resolve_model,
)

# torch, transformers, onnx and onnxruntime are imported where used (export, quantisation, inference):
# heavy, and `import lmrec.encoders` must not load them.

__all__ = ["Int8Recipe", "OnnxTextEncoder", "default_export_dir", "export_onnx", "int8_filename"]

log = logging.getLogger(__name__)

_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_OPSET = 17

#: ``keep-down-proj`` (default): every weight MatMul/Gemm in int8 except the feed-forward
#: down-projections (weights with more inputs than outputs: their GELU inputs have the widest range,
#: which per-tensor activation quantisation handles worst), kept in fp32. ``all``: every weight in
#: int8: faster, but further from the fp32 vectors (speed and agreement with fp32 are measured by
#: benchmarks/encode_throughput.py and reported in benchmarks/RESULTS.md).
Int8Recipe = Literal["keep-down-proj", "all"]


def default_export_dir() -> Path:
    """Where exported models are kept when no directory is given: ``~/.cache/lmrec/onnx``."""
    return Path.home() / ".cache" / "lmrec" / "onnx"


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def export_onnx(
    model: str | Path | ModelSource | None,
    export_dir: str | Path | None = None,
    *,
    quantize: bool = True,
    int8_recipe: Int8Recipe = "keep-down-proj",
) -> Path:
    """Export a Hugging Face transformer to ONNX (and an int8 copy), once per model content.

    The graph maps ``input_ids``, ``attention_mask`` (and ``token_type_ids`` where the tokenizer makes
    them) to ``last_hidden_state``, with dynamic batch and sequence axes. The int8 copy uses ONNX
    Runtime's dynamic quantisation: per-channel signed int8 weights for MatMul and Gemm (see
    `Int8Recipe` for which), activations quantised per batch on the fly. Per-tensor weight scales
    lose much more (worst item cosine 0.91 on MiniLM against 0.99 per channel).

    Args:
        model: local directory, hub name, resolved `ModelSource`, or ``None`` for the packaged MiniLM.
        export_dir: cache root (default `default_export_dir`).
        quantize: also write the int8 model.
        int8_recipe: which weights to quantise (see `Int8Recipe`).

    Returns:
        The directory holding ``model.onnx``, the int8 model `int8_filename` (when ``quantize``) and
        ``export.json``.
    """
    int8_name = int8_filename(int8_recipe)
    source = model if isinstance(model, ModelSource) else resolve_model(model)
    source.check_plain_pooling()
    fingerprint = source_fingerprint(source)
    root = Path(export_dir) if export_dir is not None else default_export_dir()
    target = root / f"{_safe(source.model_id)}-{fingerprint}"
    target.mkdir(parents=True, exist_ok=True)
    fp32 = target / "model.onnx"
    if not fp32.exists():
        _export_fp32(source, fp32)
    int8 = target / int8_name
    if quantize and not int8.exists():
        _quantize(fp32, int8, int8_recipe)
    meta = {"model_id": source.model_id, "source": source.location, "fingerprint": fingerprint, "opset": _OPSET}
    meta_file = target / "export.json"
    if not meta_file.exists():
        meta_file.write_text(json.dumps(meta, indent=2))
    return target


def _export_fp32(source: ModelSource, path: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    log.info("exporting %s to ONNX at %s", source.model_id, path)
    tokenizer = AutoTokenizer.from_pretrained(source.hf_location)
    # eager attention traces to plain MatMul/Softmax ops that every ONNX Runtime build runs
    model = AutoModel.from_pretrained(source.hf_location, attn_implementation="eager").eval()
    sample = tokenizer(["an example text", "a second, longer example text"], padding=True, return_tensors="pt")
    names = [k for k in _INPUTS if k in sample]

    class _LastHidden(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *args: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(names, args))).last_hidden_state

    axes = {k: {0: "batch", 1: "sequence"} for k in [*names, "last_hidden_state"]}
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp_path = Path(tmp) / path.name
        torch.onnx.export(
            _LastHidden(model),
            tuple(sample[k] for k in names),
            str(tmp_path),
            dynamo=False,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            do_constant_folding=True,
        )
        os.replace(tmp_path, path)  # atomic: an interrupted export leaves no half-written model


def int8_filename(recipe: Int8Recipe) -> str:
    if recipe not in ("all", "keep-down-proj"):
        raise ValueError(f"int8_recipe must be 'all' or 'keep-down-proj', got {recipe!r}")
    return "model.int8.onnx" if recipe == "all" else f"model.int8-{recipe}.onnx"


def _down_projections(path: Path) -> list[str]:
    """Names of MatMul nodes whose weight has more rows (inputs) than columns (outputs)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    out = []
    for node in graph.node:
        if node.op_type == "MatMul" and len(node.input) == 2:
            dims = shapes.get(node.input[1])
            if dims is not None and len(dims) == 2 and dims[0] > dims[1]:
                out.append(node.name)
    return out


def _quantize(fp32: Path, int8: Path, recipe: Int8Recipe = "all") -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    log.info("quantising %s to int8 (%s)", fp32, recipe)
    exclude = _down_projections(fp32) if recipe == "keep-down-proj" else []
    # ONNX Runtime's pre-processing hint goes to the root logger; its symbolic shape inference does
    # not complete on transformer graphs, and the quantised model is accurate without it.
    hint = _DropMessage("pre-processing before quantization")
    root = logging.getLogger()
    root.addFilter(hint)
    try:
        with tempfile.TemporaryDirectory(dir=int8.parent) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tmp_path = Path(tmp) / int8.name
            quantize_dynamic(
                str(fp32),
                str(tmp_path),
                weight_type=QuantType.QInt8,
                per_channel=True,
                op_types_to_quantize=["MatMul", "Gemm"],
                nodes_to_exclude=exclude,
            )
            os.replace(tmp_path, int8)
    finally:
        root.removeFilter(hint)


class _DropMessage(logging.Filter):
    def __init__(self, fragment: str) -> None:
        super().__init__()
        self.fragment = fragment

    def filter(self, record: logging.LogRecord) -> bool:
        return self.fragment not in record.getMessage()


class OnnxTextEncoder(TokenEncoder):
    """A transformer run by ONNX Runtime on the CPU, fp32 or dynamically quantised int8.

    Args:
        model: local directory or hub name (``None``: packaged all-MiniLM-L6-v2).
        quantize: use the int8 model (``backend="onnx-int8"``); else the fp32 export.
        int8_recipe: which weights the int8 model quantises (see `Int8Recipe`).
        export_dir: where exports are cached (default `default_export_dir`).
        pooling, max_seq_length, query_prefix, passage_prefix: as in `HFTextEncoder`.
        num_threads: ONNX Runtime intra-op threads (default: torch's thread count, which is the number
            of physical cores).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        quantize: bool = True,
        int8_recipe: Int8Recipe = "keep-down-proj",
        export_dir: str | Path | None = None,
        pooling: str = "auto",
        max_seq_length: int | None = None,
        query_prefix: str | None = None,
        passage_prefix: str | None = None,
        num_threads: int | None = None,
    ) -> None:
        import onnxruntime as ort
        from transformers import AutoConfig, AutoTokenizer

        self.source = resolve_model(model)
        self.export_path = export_onnx(self.source, export_dir, quantize=quantize, int8_recipe=int8_recipe)
        self.tokenizer = AutoTokenizer.from_pretrained(self.source.hf_location)
        config = AutoConfig.from_pretrained(self.source.hf_location)
        self.pooling = default_pooling(self.source) if pooling == "auto" else pooling
        if self.pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'auto', 'mean' or 'cls', got {pooling!r}")
        self.max_length = max_seq_length or model_max_length(self.source, self.tokenizer, config)
        self.prefixes = detect_prefixes(self.source.model_id, query_prefix, passage_prefix)
        self.dim = int(config.hidden_size)
        self.quantized = quantize
        options = ort.SessionOptions()
        options.intra_op_num_threads = num_threads or _default_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        onnx_file = self.export_path / (int8_filename(int8_recipe) if quantize else "model.onnx")
        self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._input_names = [i.name for i in self.session.get_inputs()]
        self.name = encoder_name(
            self.source.model_id,
            source_fingerprint(self.source),
            pooling=self.pooling,
            max_length=self.max_length,
            prefixes=self.prefixes,
            precision=("onnx-int8" + ("" if int8_recipe == "all" else f"-{int8_recipe}")) if quantize else "onnx-fp32",
        )

    def _hidden(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        feed = {k: batch[k].astype(np.int64) for k in self._input_names}
        return self.session.run(["last_hidden_state"], feed)[0]


def _default_threads() -> int:
    try:
        import torch

        return max(1, torch.get_num_threads())
    except ImportError:  # pragma: no cover
        return max(1, (os.cpu_count() or 2) // 2)
