"""Image vectors: a CLIP vision encoder from a local path, or vectors the user already has.

`ClipImageEncoder` runs a Hugging Face CLIP vision tower (``CLIPVisionModelWithProjection``, or the
vision half of a full ``CLIPModel`` checkpoint) with CLIP's preprocessing done in PIL and numpy, so it
needs no torchvision. `OpenClipImageEncoder` uses open_clip where it is installed; installing
open_clip_torch from PyPI here would replace the pinned CPU torch (it pulls torchvision and a newer
torch), so it is optional. `PrecomputedVectors` reads item id -> vector files, the usual case for
public data sets.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lmrec.data.catalog import ItemCatalog
from lmrec.data.idmap import IdMap
from lmrec.encoders.model_files import model_fingerprint

# PIL, torch, transformers and open_clip are imported where used: they are optional or heavy, and
# `import lmrec.encoders` must not load them.

__all__ = [
    "ClipImageEncoder",
    "OpenClipImageEncoder",
    "PrecomputedVectors",
    "encode_catalog_images",
    "load_image",
    "make_image_encoder",
]

log = logging.getLogger(__name__)

_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_image(image: Any, root: str | Path | None = None) -> Any:
    """A PIL RGB image from a PIL image, a path, or a path relative to ``root``."""
    from PIL import Image

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    path = Path(image)
    if root is not None and not path.is_absolute():
        path = Path(root) / path
    if not path.exists():
        raise ValueError(f"image file {str(path)!r} does not exist")
    with Image.open(path) as img:
        return img.convert("RGB")


def _normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


class ClipImageEncoder:
    """CLIP image tower (Hugging Face transformers) loaded from a local directory.

    Args:
        model: directory of a ``CLIPVisionModelWithProjection`` or ``CLIPModel`` checkpoint.
        device: torch device.

    Attributes:
        name: ``"clip:{dir name}@{content hash}"``.
        dim: projection width.
        image_size: side of the square the image is cropped to.
    """

    def __init__(self, model: str | Path, *, device: str = "cpu") -> None:
        from transformers import CLIPVisionModelWithProjection

        path = Path(model)
        if not path.is_dir():
            raise ValueError(f"CLIP model directory {str(model)!r} does not exist")
        self.device = device
        # transformers wraps PreTrainedModel.to with functools.wraps(torch.nn.Module.to), whose stub
        # expects the model as the first argument of the bound call.
        self.model = CLIPVisionModelWithProjection.from_pretrained(str(path)).to(device).eval()  # type: ignore[arg-type]
        cfg = self.model.config
        self.dim = int(cfg.projection_dim)
        self.image_size = int(cfg.image_size)
        self.resize_to = self.image_size
        self.mean, self.std = np.asarray(_CLIP_MEAN, np.float32), np.asarray(_CLIP_STD, np.float32)
        pre = path / "preprocessor_config.json"
        if pre.exists():
            self._read_preprocessor(json.loads(pre.read_text()))
        self.name = f"clip:{path.resolve().name}@{model_fingerprint(path)}"

    def _read_preprocessor(self, cfg: dict[str, Any]) -> None:
        size, crop = cfg.get("size"), cfg.get("crop_size")
        if isinstance(size, dict):
            size = size.get("shortest_edge", size.get("height"))
        if isinstance(crop, dict):
            crop = crop.get("height")
        self.resize_to = int(size or self.resize_to)
        self.image_size = int(crop or self.image_size)
        if "image_mean" in cfg:
            self.mean = np.asarray(cfg["image_mean"], np.float32)
        if "image_std" in cfg:
            self.std = np.asarray(cfg["image_std"], np.float32)

    def preprocess(self, image: Any) -> np.ndarray:
        """Resize the short side (bicubic), centre-crop, scale to [0, 1], normalise: (3, size, size) float32."""
        from PIL import Image

        img = load_image(image)
        w, h = img.size
        scale = self.resize_to / min(w, h)
        img = img.resize(
            (max(self.image_size, round(w * scale)), max(self.image_size, round(h * scale))),
            Image.Resampling.BICUBIC,
        )
        w, h = img.size
        left, top = (w - self.image_size) // 2, (h - self.image_size) // 2
        img = img.crop((left, top, left + self.image_size, top + self.image_size))
        arr = np.asarray(img, dtype=np.float32) / 255.0  # (size, size, 3)
        arr = (arr - self.mean) / self.std
        return arr.transpose(2, 0, 1)  # (3, size, size)

    def encode_images(self, images: Sequence[Any], batch_size: int = 32, *, show_progress: bool = False) -> np.ndarray:
        """(n, dim) float32 unit vectors for PIL images or image paths."""
        import torch

        out = np.zeros((len(images), self.dim), dtype=np.float32)
        starts = range(0, len(images), batch_size)
        if show_progress:
            starts = tqdm(starts, desc=f"encode {self.name}", unit="batch")
        for start in starts:
            pixels = np.stack([self.preprocess(img) for img in images[start : start + batch_size]])
            with torch.inference_mode():
                emb = self.model(pixel_values=torch.from_numpy(pixels).to(self.device)).image_embeds
            out[start : start + len(pixels)] = emb.float().cpu().numpy()
        return _normalize(out)


class OpenClipImageEncoder:
    """open_clip image tower with weights from a local file (needs ``open_clip_torch`` installed).

    Args:
        arch: open_clip model name, e.g. ``"ViT-B-32"``.
        weights: local checkpoint file for that architecture.
        device: torch device.
    """

    def __init__(self, arch: str, weights: str | Path, *, device: str = "cpu") -> None:
        try:
            import open_clip
        except ImportError as err:
            raise ImportError(
                "backend='open_clip' needs open_clip_torch, which is not installed (its PyPI install would "
                "replace the pinned torch); use backend='clip' with a Hugging Face CLIP directory"
            ) from err
        weights = Path(weights)
        if not weights.is_file():
            raise ValueError(f"open_clip weights file {str(weights)!r} does not exist")
        self.device = device
        self.model, _, self.transform = open_clip.create_model_and_transforms(
            arch, pretrained=str(weights), device=device
        )
        self.model.eval()
        with open(weights, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()[:12]
        self.name = f"open_clip:{arch}@{digest}"
        self.dim = int(self.model.visual.output_dim)

    def encode_images(self, images: Sequence[Any], batch_size: int = 32, *, show_progress: bool = False) -> np.ndarray:
        import torch

        out = np.zeros((len(images), self.dim), dtype=np.float32)
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.transform(load_image(i)) for i in images[start : start + batch_size]])
            with torch.inference_mode():
                out[start : start + len(batch)] = self.model.encode_image(batch.to(self.device)).float().cpu().numpy()
        return _normalize(out)


def make_image_encoder(
    model: str | Path, backend: Literal["clip", "open_clip"] = "clip", *, arch: str | None = None, device: str = "cpu"
) -> ClipImageEncoder | OpenClipImageEncoder:
    """An image encoder from local weights: a Hugging Face CLIP directory, or an open_clip checkpoint + ``arch``."""
    if backend == "clip":
        return ClipImageEncoder(model, device=device)
    if backend == "open_clip":
        if arch is None:
            raise ValueError("backend='open_clip' needs arch, e.g. arch='ViT-B-32'")
        return OpenClipImageEncoder(arch, model, device=device)
    raise ValueError(f"image backend must be 'clip' or 'open_clip', got {backend!r}")


class PrecomputedVectors:
    """Vectors supplied by the user, keyed by item id.

    Args:
        ids: n external item ids.
        vectors: (n, dim) array; rows are L2-normalised on the way in.
        name: a label for where the vectors came from.
    """

    def __init__(self, ids: Sequence[object], vectors: np.ndarray, name: str = "precomputed") -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"vectors must be 2-D (n, dim), got shape {vectors.shape}")
        if len(ids) != len(vectors):
            raise ValueError(f"{len(ids)} ids for {len(vectors)} vectors")
        if not np.isfinite(vectors).all():
            raise ValueError("vectors contain NaN or infinite values")
        self.index = IdMap(ids)
        if len(self.index) != len(ids):
            raise ValueError("ids contain duplicates")
        self.vectors = _normalize(vectors)
        self.dim = int(vectors.shape[1])
        self.name = name

    @classmethod
    def from_file(cls, path: str | Path, ids: Sequence[object] | str | Path | None = None) -> PrecomputedVectors:
        """Read ``.npz`` (arrays ``ids`` and ``vectors``), ``.npy`` (with ``ids`` given as a list or a
        JSON/text file, one id a line) or ``.parquet`` (column ``item_id`` and either a list column
        ``vector`` or one numeric column per dimension)."""
        path = Path(path)
        if not path.exists():
            raise ValueError(f"vector file {str(path)!r} does not exist")
        label = f"precomputed:{path.name}"
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                missing = {"ids", "vectors"} - set(data.files)
                if missing:
                    raise ValueError(f"{str(path)!r} lacks arrays {sorted(missing)}")
                return cls(data["ids"].astype(str).tolist(), data["vectors"], label)
        if path.suffix == ".npy":
            if ids is None:
                raise ValueError(f"{str(path)!r} holds vectors only; pass ids (a list or a file of ids)")
            if isinstance(ids, (str, Path)):
                text = Path(ids).read_text()
                ids = json.loads(text) if str(ids).endswith(".json") else text.splitlines()
            return cls(list(ids), np.load(path, allow_pickle=False), label)
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            if "item_id" not in frame.columns:
                raise ValueError(f"{str(path)!r} has no item_id column; columns: {list(frame.columns)}")
            if "vector" in frame.columns:
                vectors = np.stack([np.asarray(v, dtype=np.float32) for v in frame["vector"]])
            else:
                vectors = frame.drop(columns=["item_id"]).to_numpy(dtype=np.float32)
            return cls(frame["item_id"].astype(str).tolist(), vectors, label)
        raise ValueError(f"unsupported vector file type {path.suffix!r}; use .npz, .npy or .parquet")

    @classmethod
    def from_catalog(cls, catalog: ItemCatalog) -> PrecomputedVectors:
        """The vectors in the catalogue's ``vector_col`` (items without one are left out)."""
        if catalog.vector_col is None:
            raise ValueError("the catalogue has no vector column (ItemCatalog.vector_col is None)")
        col = catalog.frame[catalog.vector_col]
        keep = [i for i, v in zip(col.index, col) if v is not None and not (np.isscalar(v) and np.isnan(v))]
        return cls(
            keep, np.stack([np.asarray(col[i], dtype=np.float32) for i in keep]), f"catalog:{catalog.vector_col}"
        )

    def aligned(
        self, item_map: IdMap, *, missing: Literal["zero", "mean", "raise"] = "zero"
    ) -> tuple[np.ndarray, np.ndarray]:
        """Vectors in ``item_map`` order.

        Args:
            item_map: row order.
            missing: for items without a vector: a zero row, the normalised mean vector, or ``"raise"``.

        Returns:
            ``(vectors, found)``: (n_items, dim) float32 and (n_items,) bool.
        """
        pos = self.index.to_index(item_map.ids, unknown="missing")
        found = pos >= 0
        if missing == "raise" and not found.all():
            bad = [i for i, f in zip(item_map.ids, found) if not f][:5]
            raise ValueError(f"{int((~found).sum())} items have no precomputed vector, e.g. {bad}")
        out = np.zeros((len(item_map), self.dim), dtype=np.float32)
        out[found] = self.vectors[pos[found]]
        if missing == "mean" and not found.all():
            out[~found] = _normalize(self.vectors.mean(axis=0, keepdims=True))
        elif missing not in ("zero", "mean", "raise"):
            raise ValueError(f"missing must be 'zero', 'mean' or 'raise', got {missing!r}")
        return out, found


def encode_catalog_images(
    catalog: ItemCatalog,
    item_map: IdMap,
    encoder: ClipImageEncoder | OpenClipImageEncoder,
    *,
    image_root: str | Path | None = None,
    batch_size: int = 32,
    show_progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Encode the catalogue's ``image_col`` images in ``item_map`` order.

    Returns:
        ``(vectors, found)``: (n_items, dim) float32 (zero rows where an item has no image path) and
        (n_items,) bool.
    """
    if catalog.image_col is None:
        raise ValueError("the catalogue has no image column (ItemCatalog.image_col is None)")
    paths = catalog.field_values(item_map, catalog.image_col)
    found = np.array([bool(p) for p in paths])
    out = np.zeros((len(paths), encoder.dim), dtype=np.float32)
    if found.any():
        root = Path(image_root) if image_root is not None else None
        images = [str(root / p) if root is not None and not Path(p).is_absolute() else p for p in paths if p]
        out[found] = encoder.encode_images(images, batch_size=batch_size, show_progress=show_progress)
    return out, found
