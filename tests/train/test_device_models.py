"""The torch models on a device: `optim.device` / `optim.precision` of the lm model, the catalogue
size at which its objective switches to sampled softmax, and the clear error for a missing GPU."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.lm import LMRecommender
from lmrec.models.lm.config import OptimConfig
from lmrec.train.losses import FullSoftmaxCE, SampledSoftmax

GENRES = ["action", "comedy", "drama"]
PER_GENRE, N_USERS = 4, 12


def genre_data() -> Dataset:
    """User u watches the items of genre u % 3 in a cycle; item text names the genre."""
    rows = []
    for u in range(N_USERS):
        g = u % len(GENRES)
        rows += [(f"u{u}", f"i{g * PER_GENRE + (t + u) % PER_GENRE}", float(t)) for t in range(6)]
    n_items = len(GENRES) * PER_GENRE
    inter = Interactions.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]),
        user_map=IdMap(f"u{u}" for u in range(N_USERS)),
        item_map=IdMap(f"i{i}" for i in range(n_items)),
    )
    titles = pd.DataFrame({"title": [f"{GENRES[i // PER_GENRE]} film" for i in range(n_items)]})
    titles.index = [f"i{i}" for i in range(n_items)]
    return Dataset(inter, items=ItemCatalog(titles, text_fields=["title"]))


class CountingEncoder(HashingEncoder):
    calls = 0

    def encode(self, texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        CountingEncoder.calls += 1
        return super().encode(texts, *args, **kwargs)


def lm(**optim) -> LMRecommender:
    return LMRecommender(
        dim=16,
        user_tower={"max_len": 6, "n_layers": 1, "n_heads": 2, "dropout": 0.0, "use_user_text": False},
        item_tower={"whiten": False},
        optim={"epochs": 4, "batch_size": 4, "lr": 1e-2, **optim},
        text_encoder=HashingEncoder(32),
        num_threads=1,
        random_state=0,
    )


def test_optim_device_and_precision_are_validated_with_the_field_name() -> None:
    assert OptimConfig().device == "auto" and OptimConfig().precision == "auto"
    assert OptimConfig(device="CUDA:1").device == "cuda:1"
    with pytest.raises(
        ValueError, match=re.escape("OptimConfig.device must be one of ['auto', 'cpu', 'cuda', 'cuda:N'")
    ):
        OptimConfig(device="gpu")
    with pytest.raises(ValueError, match=re.escape("OptimConfig.precision must be one of ['auto', 'fp32', 'bf16'")):
        OptimConfig(precision="int8")
    # reachable by dotted key, and kept by get_params (so the saved config names the device)
    model = LMRecommender.from_params({"optim.device": "cpu", "optim.precision": "fp32"})
    assert model.get_params()["optim"]["device"] == "cpu"


def test_lm_on_cuda_without_a_gpu_fails_before_encoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    model = lm(device="cuda")
    model.text_encoder = CountingEncoder(32)
    CountingEncoder.calls = 0
    with pytest.raises(ValueError, match=r"^device 'cuda' asked for, but CUDA is not available on this machine"):
        model.fit(genre_data())
    assert CountingEncoder.calls == 0


def test_lm_on_the_cpu_by_name_equals_auto_and_ends_on_the_cpu() -> None:
    if torch.cuda.is_available():
        pytest.skip("'auto' means the GPU on this machine")
    data = genre_data()
    users = np.arange(N_USERS)
    auto = lm().fit(data)
    cpu = lm(device="cpu", precision="fp32").fit(data)
    np.testing.assert_array_equal(auto.score_all(users), cpu.score_all(users))
    assert {p.device.type for p in auto.net_.parameters()} == {"cpu"}


def test_lm_under_bf16_autocast_keeps_fp32_weights_and_learns_the_genres() -> None:
    data = genre_data()
    model = lm(precision="bf16", epochs=20).fit(data)
    assert {p.dtype for p in model.net_.parameters()} == {torch.float32}
    top, _ = model.recommend(np.arange(N_USERS), k=3, exclude_seen=False)
    # the top 3 of every user are items of the user's genre (items 4g .. 4g + 3)
    assert all((top[u] // PER_GENRE == u % len(GENRES)).all() for u in range(N_USERS))


@pytest.mark.parametrize(("threshold", "expected"), [(12, FullSoftmaxCE), (11, SampledSoftmax)])
def test_auto_loss_switches_to_sampled_softmax_above_the_catalogue_size(
    monkeypatch: pytest.MonkeyPatch, threshold: int, expected: type
) -> None:
    # 12 items: full softmax up to full_softmax_max_items = 12, sampled softmax with log-Q at 11
    used: list[str] = []
    for cls in (FullSoftmaxCE, SampledSoftmax):

        def spy(self, *args, __cls=cls, __forward=cls.forward, **kwargs):  # type: ignore[no-untyped-def]
            used.append(__cls.__name__)
            return __forward(self, *args, **kwargs)

        monkeypatch.setattr(cls, "forward", spy)
    model = lm(epochs=1)
    model.objective = model.objective.replace(full_softmax_max_items=threshold, n_negatives=8)
    model.fit(genre_data())
    assert set(used) == {expected.__name__}


# ---------------------------------------------------------------------- the intensity model
def _reviews(n: int = 120):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 8)).astype(np.float32)
    rating = np.clip(3 + 1.5 * x[:, 0], 1, 5)
    groups = np.array(["A", "B"] * (n // 2), dtype=object)
    return [f"review {i}" for i in range(n)], groups, rating, (rating > 3).astype(float), x


def test_intensity_on_cuda_without_a_gpu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from lmrec.models.intensity import IntensityModel

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    texts, groups, rating, flag, x = _reviews()
    with pytest.raises(ValueError, match=r"^device 'cuda' asked for, but CUDA is not available on this machine"):
        IntensityModel(device="cuda", epochs=1).fit(texts, groups, rating, flag, embeddings=x)
    with pytest.raises(ValueError, match=re.escape("IntensityModel device must be one of ['auto', 'cpu'")):
        IntensityModel(device="gpu", epochs=1).fit(texts, groups, rating, flag, embeddings=x)


def test_intensity_on_the_cpu_by_name_equals_auto_and_saves_its_device(tmp_path) -> None:
    from lmrec.models.intensity import IntensityModel

    if torch.cuda.is_available():
        pytest.skip("'auto' means the GPU on this machine")
    texts, groups, rating, flag, x = _reviews()
    fast = dict(hidden=16, adapter_rank=2, epochs=5, batch_size=32, num_threads=1)
    auto = IntensityModel(**fast).fit(texts, groups, rating, flag, embeddings=x)
    cpu = IntensityModel(device="cpu", **fast).fit(texts, groups, rating, flag, embeddings=x)
    np.testing.assert_array_equal(
        auto.predict(texts, groups, embeddings=x)[0], cpu.predict(texts, groups, embeddings=x)[0]
    )
    loaded = IntensityModel.load(cpu.save(tmp_path / "m"))
    assert loaded.device == "cpu"
    np.testing.assert_array_equal(
        loaded.predict(texts, groups, embeddings=x)[0], cpu.predict(texts, groups, embeddings=x)[0]
    )
