"""Bring-your-own item vectors (`lmrec.encoders.byo`) and the lm model fitted on them."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog
from lmrec.encoders.byo import load_item_vectors, read_vector_file
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.lm import LMRecommender
from lmrec.models.lm.config import EncoderConfig

VECS = np.arange(12, dtype=np.float32).reshape(4, 3)  # row r = [3r, 3r + 1, 3r + 2]
FILE_IDS = ["d", "b", "a", "c"]


def _npy(tmp_path, ids_file: bool = True):
    path = tmp_path / "vectors.npy"
    np.save(path, VECS)
    if ids_file:
        (tmp_path / "vectors.ids.txt").write_text("\n".join(FILE_IDS) + "\n")
    return path


def test_npy_rows_come_back_in_catalogue_order(tmp_path) -> None:
    path = _npy(tmp_path)
    # catalogue a, b, c: file rows 2, 1, 3
    np.testing.assert_array_equal(load_item_vectors(path, ["a", "b", "c"]), VECS[[2, 1, 3]])
    # an explicit id list wins over the id file
    np.testing.assert_array_equal(load_item_vectors(path, ["a"], ids=["a", "x", "y", "z"]), VECS[[0]])


def test_parquet_with_a_vector_column_or_numeric_columns(tmp_path) -> None:
    lists = tmp_path / "lists.parquet"
    pd.DataFrame({"item_id": FILE_IDS, "vector": [list(v) for v in VECS]}).to_parquet(lists)
    np.testing.assert_array_equal(load_item_vectors(lists, ["c", "d"]), VECS[[3, 0]])
    columns = tmp_path / "columns.parquet"
    frame = pd.DataFrame(VECS, columns=["x0", "x1", "x2"])
    frame.insert(0, "item_id", FILE_IDS)
    frame.to_parquet(columns)
    np.testing.assert_array_equal(load_item_vectors(columns, ["b"], dim=3), VECS[[1]])
    ids, vectors = read_vector_file(columns)
    assert ids == FILE_IDS and vectors.dtype == np.float32


def test_missing_ids_name_the_file_and_examples(tmp_path) -> None:
    path = _npy(tmp_path)
    message = f"item vector file {str(path)!r} has no vector for 2 of the 3 catalogue items, e.g. ['e', 'f']"
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        load_item_vectors(path, ["a", "e", "f"])


def test_wrong_dimension_and_other_bad_files(tmp_path) -> None:
    path = _npy(tmp_path)
    with pytest.raises(ValueError, match=re.escape("holds 3-d vectors; expected 384-d")):
        load_item_vectors(path, ["a"], dim=384)
    with pytest.raises(ValueError, match=re.escape("has 4 rows but 2 item ids")):
        load_item_vectors(path, ["a"], ids=["a", "b"])
    with pytest.raises(ValueError, match=re.escape("repeats item ids, e.g. ['a']")):
        load_item_vectors(path, ["a"], ids=["a", "a", "b", "c"])
    bare = tmp_path / "bare"
    bare.mkdir()
    with pytest.raises(ValueError, match=re.escape("needs its row ids: pass an id list or write")):
        load_item_vectors(_npy(bare, ids_file=False), ["a"])
    with pytest.raises(ValueError, match=re.escape("does not exist")):
        load_item_vectors(tmp_path / "nope.npy", ["a"])
    (tmp_path / "v.csv").write_text("x")
    with pytest.raises(ValueError, match=re.escape("must be .npy or .parquet, got '.csv'")):
        load_item_vectors(tmp_path / "v.csv", ["a"])
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([[1.0, np.nan]], dtype=np.float32))
    with pytest.raises(ValueError, match=re.escape("has NaN or infinite values for items ['a']")):
        load_item_vectors(nan, ["a"], ids=["a"])


def test_config_rejects_lora_with_brought_vectors() -> None:
    with pytest.raises(ValueError, match=re.escape("EncoderConfig.item_vectors brings fixed item vectors")):
        EncoderConfig(item_vectors="v.npy", finetune="lora")


def _data() -> Dataset:
    rows = [(f"u{u}", f"i{(u % 2) * 3 + (t + u) % 3}", float(t)) for u in range(8) for t in range(4)]
    inter = Interactions.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]),
        user_map=IdMap(f"u{u}" for u in range(8)),
        item_map=IdMap(f"i{i}" for i in range(6)),
    )
    frame = pd.DataFrame({"title": [f"title {i}" for i in range(6)]}, index=[f"i{i}" for i in range(6)])
    return Dataset(inter, items=ItemCatalog(frame, text_fields=["title"]))


class RefusingEncoder(HashingEncoder):
    def encode(self, texts, *args, **kwargs):  # type: ignore[no-untyped-def]
        raise AssertionError("item texts must not be encoded when vectors are brought")


def test_lm_fitted_on_brought_vectors_equals_lm_fitted_on_the_same_vectors_encoded(tmp_path) -> None:
    data = _data()
    encoder = HashingEncoder(16)
    texts = [f"title {i}" for i in range(6)]
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    path = tmp_path / "mine.npy"
    np.save(path, vectors[::-1].copy())  # stored in another order, keyed by id
    (tmp_path / "mine.ids.txt").write_text("\n".join(f"i{i}" for i in reversed(range(6))))
    common = dict(
        dim=8,
        user_tower={"max_len": 4, "n_layers": 1, "n_heads": 2, "use_user_text": False},
        item_tower={"whiten": False},
        optim={"epochs": 2, "batch_size": 4},
        num_threads=1,
        random_state=0,
    )
    encoded = LMRecommender(**common, text_encoder=encoder).fit(data)
    brought = LMRecommender(**common, encoder={"item_vectors": str(path)}, text_encoder=RefusingEncoder(16)).fit(data)
    users = np.arange(8)
    np.testing.assert_allclose(brought.score_all(users), encoded.score_all(users), rtol=1e-5, atol=1e-6)
