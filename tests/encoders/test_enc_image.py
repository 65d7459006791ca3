"""Image vectors: a tiny random CLIP vision tower, and user-supplied precomputed vectors."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lmrec.data.catalog import ItemCatalog
from lmrec.data.idmap import IdMap
from lmrec.encoders import ImageEncoder
from lmrec.encoders.image import (
    ClipImageEncoder,
    PrecomputedVectors,
    encode_catalog_images,
    make_image_encoder,
)

_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)
_STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)


def _vision_config():
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    import torch
    from transformers import CLIPVisionModelWithProjection

    path = tmp_path_factory.mktemp("clip") / "tiny-clip-vision"
    torch.manual_seed(0)
    CLIPVisionModelWithProjection(_vision_config()).save_pretrained(str(path))
    return path


def _images() -> list[Image.Image]:
    grad = np.tile(np.linspace(0, 255, 48, dtype=np.uint8), (40, 1))
    return [
        Image.new("RGB", (40, 40), (255, 0, 0)),
        Image.new("RGB", (64, 32), (0, 0, 255)),
        Image.fromarray(np.stack([grad, grad[:, ::-1], 255 - grad], axis=-1)),  # 48 x 40 gradient
        Image.new("L", (32, 32), 128),  # grey-scale input is converted to RGB
    ]


def test_preprocess_known_answer_for_a_solid_image(tiny_clip):
    enc = ClipImageEncoder(tiny_clip)
    pixels = enc.preprocess(Image.new("RGB", (50, 70), (255, 0, 51)))
    assert pixels.shape == (3, 32, 32) and pixels.dtype == np.float32
    # (value / 255 - mean) / std per channel: red 1.0, green 0.0, blue 0.2
    want = (np.array([1.0, 0.0, 0.2], np.float32) - _MEAN) / _STD
    np.testing.assert_allclose(pixels.reshape(3, -1).mean(1), want, atol=1e-3)
    np.testing.assert_allclose(pixels[:, 5, 7], want, atol=1e-3)


def test_clip_encoder_unit_vectors_batch_equals_single_and_paths_equal_images(tiny_clip, tmp_path):
    enc = make_image_encoder(tiny_clip)
    assert isinstance(enc, ImageEncoder)
    assert enc.dim == 16 and enc.name.startswith("clip:tiny-clip-vision@")
    images = _images()
    out = enc.encode_images(images, batch_size=3)
    assert out.shape == (4, 16) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    single = np.vstack([enc.encode_images([img]) for img in images])
    np.testing.assert_allclose(out, single, atol=1e-5)
    assert np.abs(out[0] - out[1]).max() > 1e-3  # red and blue differ
    images[0].save(tmp_path / "red.png")
    np.testing.assert_allclose(enc.encode_images([str(tmp_path / "red.png")]), out[:1], atol=1e-5)


def test_clip_vision_tower_of_a_full_clip_checkpoint(tmp_path):
    import torch
    from transformers import CLIPConfig, CLIPModel

    text = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=64,
        max_position_embeddings=16,
        bos_token_id=0,
        eos_token_id=1,
        pad_token_id=2,
    )
    torch.manual_seed(0)
    CLIPModel(
        CLIPConfig(text_config=text, vision_config=_vision_config().to_dict(), projection_dim=16)
    ).save_pretrained(str(tmp_path / "full"))
    enc = ClipImageEncoder(tmp_path / "full")
    assert enc.dim == 16
    assert enc.encode_images(_images()[:2]).shape == (2, 16)


def test_preprocessor_config_is_read(tiny_clip, tmp_path):
    import shutil

    target = tmp_path / "clip"
    shutil.copytree(tiny_clip, target)
    cfg = {
        "size": {"shortest_edge": 40},
        "crop_size": {"height": 32, "width": 32},
        "image_mean": [0.5] * 3,
        "image_std": [0.5] * 3,
    }
    (target / "preprocessor_config.json").write_text(json.dumps(cfg))
    enc = ClipImageEncoder(target)
    assert enc.resize_to == 40 and enc.image_size == 32
    # (1.0 - 0.5) / 0.5 = 1 and (0 - 0.5) / 0.5 = -1
    np.testing.assert_allclose(enc.preprocess(Image.new("RGB", (8, 8), (255, 0, 0)))[:, 0, 0], [1, -1, -1], atol=1e-6)


def test_image_encoder_errors(tmp_path):
    with pytest.raises(ValueError, match="CLIP model directory '/no/clip' does not exist"):
        make_image_encoder("/no/clip")
    with pytest.raises(ValueError, match="backend='open_clip' needs arch"):
        make_image_encoder(tmp_path, backend="open_clip")
    with pytest.raises(ValueError, match="image backend must be 'clip' or 'open_clip', got 'vit'"):
        make_image_encoder(tmp_path, backend="vit")  # type: ignore[arg-type]


def test_open_clip_backend_explains_when_not_installed(tmp_path):
    try:
        import open_clip  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="needs open_clip_torch"):
            make_image_encoder(tmp_path / "w.pt", backend="open_clip", arch="ViT-B-32")
    else:  # pragma: no cover - open_clip is not installed here
        pytest.skip("open_clip installed; its backend needs real weights")


def test_encode_catalog_images_in_item_order(tiny_clip, tmp_path):
    for name, color in (("a.png", (255, 0, 0)), ("b.png", (0, 255, 0))):
        Image.new("RGB", (32, 32), color).save(tmp_path / name)
    catalog = ItemCatalog(pd.DataFrame({"img": ["a.png", None, "b.png"]}, index=["x", "y", "z"]), image_col="img")
    enc = ClipImageEncoder(tiny_clip)
    vecs, found = encode_catalog_images(catalog, IdMap(["z", "y", "x"]), enc, image_root=tmp_path)
    assert found.tolist() == [True, False, True]
    np.testing.assert_allclose(vecs[0], enc.encode_images([str(tmp_path / "b.png")])[0], atol=1e-5)
    np.testing.assert_array_equal(vecs[1], np.zeros(16, np.float32))


# ---------------------------------------------------------------------- precomputed vectors
def test_precomputed_npz_npy_and_parquet_agree(tmp_path):
    ids = ["a", "b", "c"]
    vecs = np.array([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]], np.float32)
    unit = np.array([[0.6, 0.8], [0.0, 1.0], [1.0, 0.0]], np.float32)  # 3-4-5 triangle
    np.savez(tmp_path / "v.npz", ids=np.array(ids), vectors=vecs)
    np.save(tmp_path / "v.npy", vecs)
    (tmp_path / "ids.txt").write_text("a\nb\nc\n")
    pd.DataFrame({"item_id": ids, "vector": list(vecs)}).to_parquet(tmp_path / "v.parquet")
    pd.DataFrame({"item_id": ids, "d0": vecs[:, 0], "d1": vecs[:, 1]}).to_parquet(tmp_path / "w.parquet")
    loaded = [
        PrecomputedVectors.from_file(tmp_path / "v.npz"),
        PrecomputedVectors.from_file(tmp_path / "v.npy", ids=tmp_path / "ids.txt"),
        PrecomputedVectors.from_file(tmp_path / "v.npy", ids=ids),
        PrecomputedVectors.from_file(tmp_path / "v.parquet"),
        PrecomputedVectors.from_file(tmp_path / "w.parquet"),
    ]
    order = IdMap(["c", "a", "b"])
    for pv in loaded:
        got, found = pv.aligned(order)
        np.testing.assert_allclose(got, unit[[2, 0, 1]], atol=1e-6)
        assert found.all() and pv.dim == 2


def test_precomputed_missing_items_policies():
    pv = PrecomputedVectors(["a", "b"], np.array([[1.0, 0.0], [0.0, 1.0]]))
    order = IdMap(["b", "zz", "a"])
    zero, found = pv.aligned(order)
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(zero[1], [0.0, 0.0])
    mean, _ = pv.aligned(order, missing="mean")
    np.testing.assert_allclose(mean[1], [2**-0.5, 2**-0.5], atol=1e-6)  # mean (0.5, 0.5), normalised
    with pytest.raises(ValueError, match=r"1 items have no precomputed vector, e.g. \['zz'\]"):
        pv.aligned(order, missing="raise")


def test_precomputed_input_errors(tmp_path):
    with pytest.raises(ValueError, match="2 ids for 1 vectors"):
        PrecomputedVectors(["a", "b"], np.ones((1, 3)))
    with pytest.raises(ValueError, match="ids contain duplicates"):
        PrecomputedVectors(["a", "a"], np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinite"):
        PrecomputedVectors(["a"], np.array([[np.nan, 1.0]]))
    np.save(tmp_path / "v.npy", np.ones((2, 2)))
    with pytest.raises(ValueError, match="holds vectors only; pass ids"):
        PrecomputedVectors.from_file(tmp_path / "v.npy")
    with pytest.raises(ValueError, match="unsupported vector file type '.csv'"):
        (tmp_path / "v.csv").write_text("x")
        PrecomputedVectors.from_file(tmp_path / "v.csv")


def test_precomputed_from_catalog_vector_column():
    frame = pd.DataFrame({"vec": [[0.0, 5.0], None, [2.0, 0.0]]}, index=["a", "b", "c"])
    pv = PrecomputedVectors.from_catalog(ItemCatalog(frame, vector_col="vec"))
    got, found = pv.aligned(IdMap(["a", "b", "c"]))
    assert found.tolist() == [True, False, True]
    np.testing.assert_allclose(got, [[0, 1], [0, 0], [1, 0]], atol=1e-7)
