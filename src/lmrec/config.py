"""Typed, frozen, strict configuration.

A misspelled key is an error naming the key and the valid ones (RecBole silently ignores typos; we
do not). YAML files are read by `load_config`; command-line overrides use dotted keys
(``split.seed=7``). Library code takes explicit keyword arguments; these configs feed the CLI,
`lmrec.pipeline` and the data loaders (`DataConfig` is also the format of a YAML data config).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = [
    "ConfigError",
    "DataConfig",
    "DataFormat",
    "SplitConfig",
    "EvalConfig",
    "ModelConfig",
    "ExperimentConfig",
    "from_dict",
    "load_config",
    "parse_overrides",
]

T = TypeVar("T", bound="DataclassInstance")

SplitKind = Literal["loo", "ratio", "temporal", "cold-items", "predefined"]


class ConfigError(ValueError):
    """A config value or key is wrong; the message names it."""


DataFormat = Literal["auto", "csv", "tsv", "parquet", "jsonl", "recbole", "movielens", "amazon2023"]
TimestampUnit = Literal["s", "ms", "us", "ns"]


@dataclass(frozen=True)
class DataConfig:
    """Where the data comes from, how its files read, and which fields mean what.

    The ``data:`` block of an experiment config and a YAML data config (a file `lmrec.data.loaders.load`
    reads; there relative paths are relative to the file) are both this config.

    Attributes:
        source: a bundled name (``"ml-100k"``), a directory of RecBole atomic files or MovieLens files,
            a YAML data config, a file, or a list of table files (rows concatenated in order).
        format: ``"auto"`` (told from ``source``), a table format (``"csv"``, ``"tsv"``, ``"parquet"``,
            ``"jsonl"``), ``"recbole"``, ``"movielens"`` or ``"amazon2023"``.
        name: data set name (default: the loader's).
        items_path, users_path: side files for tables.
        meta_path: the metadata file for ``"amazon2023"``.
        columns, item_columns, user_columns: role maps for tables (`ColumnMap`, `ItemColumns`,
            `UserColumns` keys).
        text_fields: item columns that make the item text, in template order (default: the loader's).
        template: item text template such as ``"{title}. {brand}"``.
        timestamp_unit: unit of numeric timestamps in tables.
        encoding: text encoding.
        strict: raise on the first bad row instead of counting it.
        scenario_field: interaction or item column holding the scenario.
        scenario_level: for list-valued scenario columns, which element is the scenario (0 = first).
        kcore: drop users and items with fewer interactions than this (0 = keep all).
        kg: a knowledge graph (`lmrec.data.loaders.kg.load_kg`): ``path`` (a ``.kg`` atomic file or a
            head / relation / tail table) and optional ``link_path`` (``.link``), ``link_column``,
            ``columns`` (role -> column), ``relations`` (those to keep) and ``member_column`` /
            ``member_relation`` (an item column naming concepts items belong to). RecBole directories pick up
            ``<name>.kg`` / ``<name>.link`` without it.
    """

    source: str | tuple[str, ...] = "ml-100k"
    format: DataFormat = "auto"
    name: str | None = None
    items_path: str | None = None
    users_path: str | None = None
    meta_path: str | None = None
    columns: dict[str, Any] | None = None
    item_columns: dict[str, Any] | None = None
    user_columns: dict[str, Any] | None = None
    text_fields: tuple[str, ...] | None = None
    template: str | None = None
    timestamp_unit: TimestampUnit = "s"
    encoding: str = "utf-8"
    strict: bool = False
    scenario_field: str | None = None
    scenario_level: int = 0
    kcore: int = 0
    kg: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if self.format not in typing.get_args(DataFormat):
            raise ConfigError(f"data.format: {self.format!r} is not one of {list(typing.get_args(DataFormat))}")
        if self.timestamp_unit not in typing.get_args(TimestampUnit):
            raise ConfigError(
                f"data.timestamp_unit: {self.timestamp_unit!r} is not one of {list(typing.get_args(TimestampUnit))}"
            )
        sources = self.source if isinstance(self.source, tuple) else (self.source,)
        if not sources or not all(isinstance(p, str) and p for p in sources):
            raise ConfigError(f"data.source must be a non-empty string or list of strings, got {self.source!r}")
        if self.kg is not None:
            valid = ("path", "link_path", "link_column", "columns", "relations", "member_column", "member_relation")
            if not isinstance(self.kg, Mapping) or "path" not in self.kg:
                raise ConfigError(f"data.kg must be a mapping with a 'path', got {self.kg!r}")
            unknown = [k for k in self.kg if k not in valid]
            if unknown:
                raise ConfigError(f"data.kg: unknown keys {unknown}; valid: {list(valid)}")
        for key in ("columns", "item_columns", "user_columns"):
            value = getattr(self, key)
            if value is not None and not isinstance(value, Mapping):
                raise ConfigError(f"data.{key} must be a mapping, got {type(value).__name__}")


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
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
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
        n
        for n, f in fields.items()
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


def _data_file_section(loaded: Mapping[str, Any], path: str | Path) -> dict[str, Any]:
    """A YAML data config's keys: the mapping itself or the one under a sole top-level ``data:`` key.

    ``path`` is the key's name in data configs written before `DataConfig` had ``source``; it maps to
    ``source``.
    """
    if set(loaded) == {"data"} and isinstance(loaded["data"], Mapping):
        loaded = loaded["data"]
    data = dict(loaded)
    if "path" in data:
        if "source" in data:
            raise ConfigError(f"{path}: give 'source' or its old name 'path', not both")
        data["source"] = data.pop("path")
    if "source" not in data:
        valid = sorted(f.name for f in dataclasses.fields(DataConfig))
        raise ConfigError(f"{path}: a data config needs 'source'; valid keys: {valid}")
    return data


@overload
def load_config(path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] = ()) -> ExperimentConfig: ...


@overload
def load_config(path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any], cls: type[T]) -> T: ...


@overload
def load_config(path: str | Path | None, overrides: Sequence[str] | Mapping[str, Any] = (), *, cls: type[T]) -> T: ...


def load_config(
    path: str | Path | None,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    cls: type[DataclassInstance] = ExperimentConfig,
) -> DataclassInstance:
    """Read a YAML config (or start from defaults when ``path`` is None) and apply overrides.

    Args:
        path: the YAML file, or None for the defaults.
        overrides: ``["split.seed=7"]`` dotted assignments, or a nested mapping.
        cls: the config class: `ExperimentConfig` (default) or `DataConfig` for a YAML data config (its
            keys at the top level or under ``data:``).

    Raises:
        ConfigError: unknown keys or bad values, naming the key.
        FileNotFoundError: ``path`` does not exist.
    """
    data: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, Mapping):
            raise ConfigError(f"{path}: the top level must be a mapping of keys, got {type(loaded).__name__}")
        data = _data_file_section(loaded, path) if cls is DataConfig else dict(loaded)
    extra = parse_overrides(overrides) if not isinstance(overrides, Mapping) else overrides
    return from_dict(cls, _merge(data, extra), "data" if cls is DataConfig else "")
