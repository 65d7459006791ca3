"""Typed, frozen, strict configuration.

A misspelled key is an error naming the key and the valid ones (RecBole silently ignores typos; we
do not). YAML files are read by `load_config`; command-line overrides use dotted keys
(``split.seed=7``). Library code takes explicit keyword arguments; these configs only feed the CLI.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

__all__ = [
    "ConfigError",
    "DataConfig",
    "SplitConfig",
    "EvalConfig",
    "ModelConfig",
    "ExperimentConfig",
    "from_dict",
    "load_config",
    "parse_overrides",
]

T = TypeVar("T")

SplitKind = Literal["loo", "ratio", "temporal", "cold-items", "predefined"]


class ConfigError(ValueError):
    """A config value or key is wrong; the message names it."""


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from and which fields mean what.

    Attributes:
        source: a bundled name ("ml-100k"), a directory of RecBole atomic files or MovieLens files, or a
            YAML data config.
        text_fields: item columns that make the item text (default: found from the file header).
        template: item text template such as ``"{title}. {brand}"`` (overrides text_fields).
        scenario_field: interaction or item column holding the scenario.
        scenario_level: for list-valued scenario columns, which element is the scenario (0 = first).
        kcore: drop users and items with fewer interactions than this (0 = keep all).
    """

    source: str = "ml-100k"
    text_fields: tuple[str, ...] | None = None
    template: str | None = None
    scenario_field: str | None = None
    scenario_level: int = 0
    kcore: int = 0


@dataclass(frozen=True)
class SplitConfig:
    """How to split: ``loo`` (leave-one-out by time), ``ratio`` (random per-user 8:1:1, RecBole's RO),
    ``temporal`` (global by time), ``cold-items`` (held-out items), ``predefined`` (RecBole benchmark files)."""

    kind: SplitKind = "loo"
    ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 2020
    cold_test_frac: float = 0.1
    cold_valid_frac: float = 0.1


@dataclass(frozen=True)
class EvalConfig:
    """Offline evaluation: full ranking unless ``protocol='sampled'`` (labelled in every key)."""

    ks: tuple[int, ...] = (5, 10, 20)
    metrics: tuple[str, ...] = ("recall", "ndcg", "mrr", "hit", "precision", "map")
    protocol: Literal["full", "sampled"] = "full"
    n_negatives: int = 100
    batch_size: int = 256
    primary: str = "ndcg@10"


@dataclass(frozen=True)
class ModelConfig:
    """One model by registered name, with constructor keyword arguments."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole offline experiment: data, split, models, evaluation, output."""

    data: DataConfig = field(default_factory=DataConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    models: tuple[ModelConfig, ...] = (ModelConfig("pop"), ModelConfig("ease"))
    eval: EvalConfig = field(default_factory=EvalConfig)
    output: str = "runs/experiment"
    seed: int = 2020


def _coerce(tp: Any, value: Any, where: str) -> Any:
    """Check/convert ``value`` to the annotated type ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, where)
    if origin in (tuple, Sequence, list) or tp in (tuple, list):
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            if isinstance(value, str) and "," in value:
                value = [v.strip() for v in value.split(",")]
            else:
                value = [value]
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}")
            return tuple(_coerce(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin in (Mapping, dict) or tp in (dict,):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{where}: expected an integer, got {value!r}") from None
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a number, got {value!r}") from None
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: Mapping[str, Any], where: str = "") -> T:
    """Build the frozen dataclass ``cls`` from ``data``, rejecting unknown keys by name.

    Raises:
        ConfigError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in fields]
    if unknown:
        name = f"{where}.{unknown[0]}" if where else str(unknown[0])
        raise ConfigError(
            f"unknown config key {name!r}; valid keys{' under ' + where if where else ''}: {sorted(fields)}"
        )
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else key
        if cls is ExperimentConfig and key == "models":
            value = [{"name": v} if isinstance(v, str) else v for v in (value or [])]
        kwargs[key] = _coerce(hints[key], value, path)
    missing = [
        n for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing required config key {(where + '.') if where else ''}{missing[0]!r}")
    return cls(**kwargs)


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["split.seed=7", "eval.ks=5,10"]`` -> nested dict with YAML-parsed values."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.sub=value")
        key, raw = item.split("=", 1)
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(raw) if raw else ""
    return out


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def load_config(
    path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] = (), cls: type[T] = ExperimentConfig
) -> T:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides.

    Raises:
        ConfigError: unknown keys or bad values, naming the key.
        FileNotFoundError: ``path`` does not exist.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = dict(loaded)
    extra = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    return from_dict(cls, _merge(data, extra))
