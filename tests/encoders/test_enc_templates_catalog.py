"""Item and user texts, token truncation, and encoding a catalogue in item-index order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders import (
    DEFAULT_ITEM_TEMPLATE,
    HashingEncoder,
    encode_catalog,
    render_item_texts,
    render_user_texts,
    truncate_to_tokens,
)


@pytest.fixture
def catalog() -> ItemCatalog:
    frame = pd.DataFrame(
        {
            "title": ["Red Pen", "Printer Paper", "Desk Lamp", None],
            "brand": ["Uni", np.nan, "", "nan"],
            "categories": ["Pens, Office", "Paper", "Lighting", "Misc"],
            "description": ["Smooth ink.", None, "Bright light for the desk at night.", ""],
        },
        index=["i1", "i2", "i3", "i4"],
    )
    return ItemCatalog(frame, text_fields=["title", "brand", "categories", "description"])


def test_item_texts_drop_missing_fields_and_never_say_nan(catalog):
    order = IdMap(["i3", "i1", "i2", "i4", "unknown"])
    texts = render_item_texts(catalog, order, template=DEFAULT_ITEM_TEMPLATE)
    assert texts == [
        "Desk Lamp. Lighting. Bright light for the desk at night.",
        "Red Pen. Uni. Pens, Office. Smooth ink.",
        "Printer Paper. Paper",
        "Misc",
        "",
    ]
    assert not any("nan" in t.lower() for t in texts)
    joined = render_item_texts(catalog, order, fields=["title", "brand"])
    assert joined == ["Desk Lamp", "Red Pen. Uni", "Printer Paper", "", ""]


def test_unknown_template_field_is_named(catalog):
    with pytest.raises(ValueError, match=r"template field\(s\) \['colour'\] not found"):
        render_item_texts(catalog, IdMap(["i1"]), template="{title} {colour}")


def test_truncate_by_whitespace_tokens_head_and_tail():
    texts = ["one two  three four", "short", ""]
    assert truncate_to_tokens(texts, 2) == ["one two", "short", ""]
    assert truncate_to_tokens(texts, 2, keep="tail") == ["three four", "short", ""]
    with pytest.raises(ValueError, match="max_tokens must be >= 1, got 0"):
        truncate_to_tokens(texts, 0)
    with pytest.raises(ValueError, match="keep must be 'head' or 'tail', got 'middle'"):
        truncate_to_tokens(texts, 2, keep="middle")  # type: ignore[arg-type]


def test_truncate_with_a_tokenizer_cuts_on_token_boundaries_keeping_original_text(tiny_bert):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    # tokens: red | pen | , | Great | ! | 我 | 想  (punctuation and each Chinese character are tokens)
    text = "Red pen, Great! 我想"
    assert truncate_to_tokens([text], 3, tok) == ["Red pen,"]
    assert truncate_to_tokens([text], 5, tok) == ["Red pen, Great!"]
    assert truncate_to_tokens([text], 6, tok) == ["Red pen, Great! 我"]
    assert truncate_to_tokens([text], 2, tok, keep="tail") == ["我想"]
    assert truncate_to_tokens([text], 7, tok) == [text]


def test_user_texts_profile_then_reviews_and_tail_truncation():
    frame = pd.DataFrame(
        {
            "user_id": ["u1", "u1", "u2", "u1"],
            "kind": ["review", "review", "review", "query"],
            "text": ["old review here", "newest review", "only one", "a query"],
            "timestamp": [1.0, 3.0, 2.0, 2.0],
        }
    )
    attrs = pd.DataFrame({"age": [24, None], "job": ["writer", "nan"]}, index=["u1", "u2"])
    users = UserTexts(frame, attrs)
    order = IdMap(["u2", "u1", "u3"])
    assert render_user_texts(users, order) == ["only one", "age: 24.0. job: writer. old review here newest review", ""]
    assert render_user_texts(users, order, kinds=("query",), include_profile=False) == ["", "a query", ""]
    # budget 6 words: profile "age: 24.0. job: writer." is 4 words, the last 2 words of the reviews fill the rest
    cut = render_user_texts(users, order, max_tokens=6)
    assert cut[1] == "age: 24.0. job: writer. newest review"


def test_encode_catalog_rows_follow_the_item_map(catalog):
    enc = HashingEncoder(dim=8)
    order = IdMap(["i2", "i4", "i1", "ghost"])
    result = encode_catalog(catalog, order, encoder=enc, template=DEFAULT_ITEM_TEMPLATE, show_progress=False)
    want = enc.encode(["Printer Paper. Paper", "Misc", "Red Pen. Uni. Pens, Office. Smooth ink.", ""])
    np.testing.assert_array_equal(result.vectors, want)
    assert result.vectors.shape == (4, 8) and result.n_items == 4
    assert result.empty_texts == 1 and result.cache_hits is None
    assert result.encoder_name == "hashing-8-0" and result.dim == 8
    assert result.summary().startswith("encoder=hashing-8-0 dim=8 items=4 items/s=")


def test_encode_catalog_takes_a_dataset_in_its_item_index_order(catalog, tmp_path):
    frame = pd.DataFrame({"user_id": ["u", "u", "v"], "item_id": ["i3", "i1", "i2"], "timestamp": [1.0, 2.0, 3.0]})
    dataset = Dataset(Interactions.from_frame(frame), items=catalog)
    assert dataset.interactions.item_map.ids == ["i3", "i1", "i2"]
    enc = HashingEncoder(dim=8)
    first = encode_catalog(dataset, encoder=enc, cache_dir=tmp_path, show_progress=False, max_tokens=2)
    np.testing.assert_array_equal(first.vectors, enc.encode(["Desk Lamp.", "Red Pen.", "Printer Paper."]))
    assert (first.cache_hits, first.cache_misses) == (0, 3)
    second = encode_catalog(dataset, encoder=enc, cache_dir=tmp_path, show_progress=False, max_tokens=2)
    assert (second.cache_hits, second.cache_misses, second.cache_hit_rate) == (3, 0, 1.0)
    assert "hit_rate=1.000" in second.summary()
    np.testing.assert_array_equal(first.vectors, second.vectors)


def test_encode_catalog_errors():
    frame = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "timestamp": [1.0]})
    with pytest.raises(ValueError, match="dataset 'dataset' has no item catalogue to encode"):
        encode_catalog(Dataset(Interactions.from_frame(frame)), encoder=HashingEncoder())
    with pytest.raises(TypeError, match="takes a Dataset or an ItemCatalog, got list"):
        encode_catalog([], encoder=HashingEncoder())  # type: ignore[arg-type]
