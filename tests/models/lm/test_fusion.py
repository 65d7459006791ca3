"""Multimodal fusion of item vectors: masked mean and gated weights by hand, the text-only
equivalence, and generated images through a tiny random CLIP vision tower end to end.

No real images ship with lmrec: the images here are generated coloured squares and the vision
model has random weights, so these tests check the plumbing, not what real photos would add.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_model
from lm_helpers import GENRES, N_ITEMS, genre_dataset

from lmrec.data import Dataset, ItemCatalog
from lmrec.models.base import load_model
from lmrec.models.lm.fusion import FusionInputs, ItemFusion, build_fusion_inputs, tokens_of


def _hand_fusion(kind: str) -> ItemFusion:
    """3 items, d = 2: text, image (identity projection) and one categorical bag with known weights."""
    inputs = FusionInputs(
        text_mask=np.array([True, True, False]),
        image=np.array([[2, 2], [0, 0], [6, 0]], np.float32),
        image_mask=np.array([True, False, True]),
        # item 0: token 0; item 1: tokens 0 and 1; item 2: no token
        categorical={"brand": (np.array([0, 1, 3]), np.array([0, 0, 1]), 2)},
    )
    fusion = ItemFusion(inputs, 2, kind)
    with torch.no_grad():
        fusion.image_proj.weight.copy_(torch.eye(2))
        fusion.image_proj.bias.zero_()
        fusion.cat_emb[0].weight.copy_(torch.tensor([[3.0, 0.0], [1.0, 4.0]]))
    return fusion


TEXT = torch.tensor([[1.0, 0.0], [0.0, 2.0], [4.0, 4.0]])


def test_masked_mean_is_the_mean_over_present_modalities():
    fusion = _hand_fusion("mean")
    values, present = fusion.modalities(TEXT)
    assert present.tolist() == [[True, True, True], [True, False, True], [False, True, False]]
    out = fusion(TEXT)
    # item 0: text [1, 0], image [2, 2], brand [3, 0]          -> [6/3, 2/3] = [2, 0.6667]
    # item 1: text [0, 2], (no image), brand mean([3,0],[1,4]) = [2, 2] -> [2/2, 4/2] = [1, 2]
    # item 2: (no text), image [6, 0], (no brand)               -> [6, 0]
    # (zero-filling the missing ones into a mean over 3 would give [2/3, 4/3] for item 1 and [2, 0] for item 2)
    np.testing.assert_allclose(out.detach().numpy(), [[2, 2 / 3], [1, 2], [6, 0]], rtol=1e-6)


def test_gated_weights_sum_to_one_over_present_and_are_zero_on_missing():
    torch.manual_seed(0)
    fusion = _hand_fusion("gated")
    values, present = fusion.modalities(TEXT)
    w = fusion.weights(values, present).detach()
    np.testing.assert_allclose(w.sum(dim=1).numpy(), 1.0, rtol=1e-6)
    assert (w[~present] == 0).all() and (w[present] > 0).all()
    assert w[2].tolist() == [0.0, 1.0, 0.0]  # item 2 has only its image
    want = (w.unsqueeze(-1) * values).sum(dim=1)
    np.testing.assert_allclose(fusion(TEXT).detach().numpy(), want.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(fusion(TEXT)[2].detach().numpy(), [6, 0], rtol=1e-6)
    # an item with no modality at all gets zero weights, not NaN
    none = FusionInputs(text_mask=np.array([False]))
    g = ItemFusion(none, 2, "gated")
    v, p = g.modalities(torch.ones(1, 2))
    assert g.weights(v, p).tolist() == [[0.0]] and g(torch.ones(1, 2)).tolist() == [[0.0, 0.0]]


def test_concat_zeroes_missing_slots_and_passes_the_flags():
    fusion = _hand_fusion("concat")
    with torch.no_grad():
        fusion.proj.weight.zero_()
        fusion.proj.bias.zero_()
        fusion.proj.weight[0, 2] = 1.0  # image slot, first coordinate
        fusion.proj.weight[1, 7] = 1.0  # the image presence flag (after 3 * 2 vector slots: text, image, brand)
    out = fusion(TEXT).detach().numpy()
    np.testing.assert_allclose(out, [[2, 1], [0, 0], [6, 1]])


def test_tokens_of_bags():
    assert tokens_of("Office & School Supplies, Paper,  Notebooks ") == [
        "Office & School Supplies",
        "Paper",
        "Notebooks",
    ]
    assert tokens_of(["a", None, " b "]) == ["a", "b"]
    assert tokens_of(float("nan")) == [] and tokens_of("") == []


def _catalog_dataset(image_paths=None) -> Dataset:
    """The genre data plus a 'brand' bag column (empty for items 0-3), 'price' (missing for item 5)
    and optionally an image path column."""
    data = genre_dataset()
    frame = data.items.frame.copy()
    frame["brand"] = ["" if i < 4 else f"b{i % 3}, shared" for i in range(N_ITEMS)]
    frame["price"] = [np.nan if i == 5 else float(i) for i in range(N_ITEMS)]
    image_col = None
    if image_paths is not None:
        frame["image"] = image_paths
        image_col = "image"
    catalog = ItemCatalog(
        frame, text_fields=["title"], categorical=["genre", "brand"], numeric=["price"], image_col=image_col
    )
    return Dataset(data.interactions, catalog, data.users, name="genres+")


def test_build_fusion_inputs_bags_vocab_and_numeric():
    data = _catalog_dataset()
    texts = ["x"] * N_ITEMS
    inputs = build_fusion_inputs(
        data.items, data.interactions.item_map, texts, categorical=["brand"], numeric=["price"]
    )
    offsets, tokens, vocab = inputs.categorical["brand"]
    assert inputs.vocabularies["brand"] == ["b0", "b1", "b2", "shared"] and vocab == 4
    ends = np.r_[offsets[1:], len(tokens)]
    assert (ends - offsets)[:4].tolist() == [0, 0, 0, 0] and (ends - offsets)[4:].min() == 2
    assert inputs.numeric_mask[:, 0].tolist() == [i != 5 for i in range(N_ITEMS)]
    present = np.array([float(i) for i in range(N_ITEMS) if i != 5])
    np.testing.assert_allclose(inputs.numeric[0, 0], (0 - present.mean()) / present.std(), rtol=1e-5)
    assert inputs.numeric[5, 0] == 0.0
    with pytest.raises(ValueError, match="fusion column 'colour' is not in the item catalogue"):
        build_fusion_inputs(data.items, data.interactions.item_map, texts, categorical=["colour"])
    with pytest.raises(ValueError, match="fusion_image=True needs a catalogue vector_col"):
        build_fusion_inputs(data.items, data.interactions.item_map, texts, image=True)


def test_text_only_item_equals_its_text_path_under_mean():
    data = _catalog_dataset()
    model = make_model(item_repr="text", fusion="mean", fusion_categorical=["brand"], epochs=3).fit(data)
    tower = model.net_.item_tower
    assert isinstance(tower.fusion, ItemFusion) and tower.fusion.names == ["text", "cat:brand"]
    # items 0-3 have no brand: their fused vector is exactly the text path of their own text
    texts = [
        model.item_text({"title": model.item_fields_["title"][i], "genre": model.item_fields_["genre"][i], "brand": ""})
        for i in range(4)
    ]
    np.testing.assert_allclose(model.item_vectors()[:4], model.encode_items(texts), atol=1e-6)
    # an item with a brand differs from its text path
    assert not np.allclose(
        model.item_vectors()[4],
        model.encode_items([model.item_text({f: model.item_fields_[f][4] for f in model.item_fields_})])[0],
        atol=1e-4,
    )
    # a new item enters text-only: equal to its text path, and the fusion inputs grew with it
    idx = model.add_items(["new"], ["comedy film"])
    np.testing.assert_allclose(model.item_vectors()[idx[0]], model.encode_items(["comedy film"])[0], atol=1e-6)
    assert tower.fusion.n_items == N_ITEMS + 1


def test_default_model_has_no_fusion_and_bad_params_are_named(genre_split):
    data, split = genre_split
    model = make_model(epochs=1).fit(data.with_interactions(split.train))
    assert model.net_.item_tower.fusion is None
    assert not any("fusion" in k for k in model.net_.state_dict())
    with pytest.raises(
        ValueError, match=r"^FusionConfig \['categorical'\] need mode='concat', 'mean' or 'gated'; mode is 'none'$"
    ):
        make_model(fusion_categorical=["genre"]).fit(data)
    with pytest.raises(
        ValueError, match=r"^FusionConfig.mode must be one of \['none', 'concat', 'mean', 'gated'\], got 'sum'$"
    ):
        make_model(fusion="sum").fit(data)
    with pytest.raises(ValueError, match="^FusionConfig.numeric must be None or a list of column names, got 'price'$"):
        make_model(fusion="mean", fusion_numeric="price").fit(data)
    with pytest.raises(
        ValueError, match="^LMRecommender fusion.mode fuses with the item text; item_tower.repr is 'id'$"
    ):
        make_model(fusion="mean", item_repr="id").fit(data)


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    path = tmp_path_factory.mktemp("clip") / "tiny-clip-vision"
    torch.manual_seed(0)
    config = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=32,
        patch_size=8,
        projection_dim=16,
    )
    CLIPVisionModelWithProjection(config).save_pretrained(str(path))
    return path


@pytest.mark.parametrize("kind", ["gated", "concat"])
def test_generated_images_through_tiny_clip_end_to_end_and_save_load(tmp_path, tiny_clip, kind):
    from PIL import Image

    colours = {"action": (220, 30, 30), "comedy": (240, 220, 40), "drama": (30, 60, 200), "horror": (20, 20, 20)}
    paths = []
    for i in range(N_ITEMS):
        if i % 7 == 3:  # a few items have no image
            paths.append("")
            continue
        genre = GENRES[i // 6] if i < 24 else GENRES[i - 24]
        path = tmp_path / f"item{i}.png"
        Image.new("RGB", (40, 40), colours[genre]).save(path)
        paths.append(str(path))
    data = _catalog_dataset(paths)
    model = make_model(
        fusion=kind,
        fusion_image=True,
        image_model=str(tiny_clip),
        fusion_categorical=["genre", "brand"],
        fusion_numeric=["price"],
        epochs=4,
    ).fit(data)
    fusion = model.net_.item_tower.fusion
    assert fusion.names == ["text", "image", "cat:genre", "cat:brand", "numeric"]
    assert fusion.image.shape == (N_ITEMS, 16) and fusion.image_mask.tolist() == [p != "" for p in paths]
    users = np.arange(8)
    before = model.score_all(users)
    assert np.isfinite(before).all()
    model.save(tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    assert loaded.fusion.mode == kind and "image_encoder" not in loaded.get_params()
    np.testing.assert_array_equal(loaded.item_vectors(), model.item_vectors())
    np.testing.assert_array_equal(loaded.score_all(users), before)
