"""Building a component-configured model from flat, dotted or nested parameters, and reading the
parameters of model directories saved before the components existed.

`ComponentParams` is a mixin for `LMRecommender` (and the multi-scenario model): its ``components``
map a key to a config class of `lmrec.models.lm.config`, and ``top_level`` names the plain
constructor arguments that are saved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from lmrec.encoders.base import TextEncoder
from lmrec.models.lm.config import COMPONENTS, FLAT_NAMES, ComponentConfig, coerce

__all__ = ["FORMAT_VERSION", "ComponentParams"]

#: format of the ``config.json`` params this code writes (1: the flat arguments before the components)
FORMAT_VERSION = 2


class ComponentParams:
    """``from_params`` / ``get_params`` / ``params_from_saved`` over typed component configs."""

    model_name: ClassVar[str]
    dim: int
    #: component key -> config class (shared: the multi-scenario model copies these)
    components: ClassVar[dict[str, type[ComponentConfig]]] = dict(COMPONENTS)
    #: components of this class alone, after ``components`` (not copied by models that reuse ``components``)
    own_components: ClassVar[dict[str, type[ComponentConfig]]] = {}
    #: top-level constructor arguments that are saved (encoder objects are not)
    top_level: ClassVar[tuple[str, ...]] = ()

    # ------------------------------------------------------------------ parameters
    @classmethod
    def all_components(cls) -> dict[str, type[ComponentConfig]]:
        """Every component key -> config class: ``components`` then ``own_components``."""
        return {**cls.components, **cls.own_components}

    @classmethod
    def flat_names(cls) -> dict[str, str]:
        """Old flat argument name -> ``component.field`` (`lmrec.models.lm.config.FLAT_NAMES`)."""
        return dict(FLAT_NAMES)

    @classmethod
    def valid_keys(cls) -> list[str]:
        """Every key `from_params` accepts: top-level names, components, dotted keys and old flat names."""
        components = cls.all_components()
        dotted = [f"{k}.{f}" for k, c in components.items() for f in c.field_names()]
        top = [*cls.top_level, "text_encoder", "image_encoder", *components]
        return sorted(top) + dotted + sorted(cls.flat_names())

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Any:
        """Build from a flat mapping as the command line and YAML give it.

        Keys may be top-level arguments (``dim``, ``random_state``, ...), components with a dict
        value (``{"objective": {"loss": "bpr"}}``, YAML), dotted keys (``"objective.loss"``), the
        everyday shortcuts (``epochs``, ``lr``, ``batch_size``, ``max_len``, ``patience``) or any
        other flat name of before the components (``loss``, ``item_repr``, ``fusion_categorical``,
        ...). Dotted and flat keys override the same field of a component dict.

        Raises:
            ValueError: an unknown key (naming it and the valid keys) or a bad value (naming the field).
        """
        components = cls.all_components()
        top: dict[str, Any] = {}
        parts: dict[str, dict[str, Any]] = {}
        fields: dict[str, Any] = {}
        for key, value in params.items():
            if key in components:
                if key == "encoder" and value is not None and isinstance(value, TextEncoder):
                    top["text_encoder"] = value
                    continue
                if key == "fusion" and isinstance(value, str):  # the old flat ``fusion="mean"``
                    value = {"mode": value}
                parts[key] = coerce(components[key], value).to_dict()
            elif "." in key:
                component, _, field = key.partition(".")
                config = components.get(component)
                if config is None or field not in config.field_names():
                    raise ValueError(f"model {cls.model_name!r} has no parameter {key!r}; valid: {cls.valid_keys()}")
                fields[key] = value
            elif key in cls.top_level or key in ("text_encoder", "image_encoder"):
                top[key] = value
            elif key in cls.flat_names():
                fields[cls.flat_names()[key]] = value
            else:
                raise ValueError(f"model {cls.model_name!r} has no parameter {key!r}; valid: {cls.valid_keys()}")
        for dotted, value in fields.items():
            component, _, field = dotted.partition(".")
            parts.setdefault(component, {})[field] = value
        return cls(**top, **parts)

    def get_params(self) -> dict[str, Any]:
        """Top-level arguments and each component as a dict (the encoder objects are not saved).

        An own component (``own_components``) is left out while it holds its defaults, so a model
        that does not use it saves the same ``config.json`` as before the component existed.
        """
        params: dict[str, Any] = {"dim": self.dim}
        for key in self.components:
            params[key] = getattr(self, key).to_dict()
        for key, cls in self.own_components.items():
            if getattr(self, key) != cls():
                params[key] = getattr(self, key).to_dict()
        params.update({k: getattr(self, k) for k in self.top_level if k != "dim"})
        return params

    @classmethod
    def params_from_saved(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor params of a saved ``config.json``: format 2 (components) as saved,
        format 1 (no ``format_version``: the flat arguments of before) mapped to the components.

        Raises:
            ValueError: a format version this code does not know.
        """
        version = config.get("format_version", 1)
        if version not in (1, FORMAT_VERSION):
            raise ValueError(
                f"{cls.__name__} cannot read a model saved with format_version {version!r}; "
                f"this lmrec reads format_version 1 and {FORMAT_VERSION}"
            )
        params = dict(config.get("params", {}))
        if version == 1:
            try:
                params = cls.from_params(params).get_params()
            except ValueError as err:
                raise ValueError(f"model saved with format_version 1 (flat parameters) does not load: {err}") from err
        return params
