"""Chinese queries in explanations: matched terms and per-term contributions name words, not phrases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lmrec.data.idmap import IdMap
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.lm.explain import explain_recommendation, query_terms
from lmrec.serve.reasons import term_contributions


class _RecordingSpace:
    """The one method `term_contributions` calls, recording the texts it encodes."""

    def __init__(self) -> None:
        self.encoder = HashingEncoder(dim=16)
        self.seen: list[str] = []

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        return self.encoder.encode(list(texts), kind="query")


def test_query_terms_segment_chinese() -> None:
    # 我想看太空冒险 "I want to watch space adventure"; \w+ gave the whole phrase as one term
    assert query_terms("我想看太空冒险") == ["我", "想", "看", "太空", "冒险"]
    # search mode: the science-fiction film query also holds 科幻 (science fiction) and 电影 (film)
    assert query_terms("科幻电影 for me") == ["科幻", "电影", "科幻电影"]


def test_explanation_names_the_matched_chinese_word() -> None:
    # space odyssey, romantic comedy, science-fiction picture, the sun and the sky
    titles = ["太空漫游", "浪漫喜剧", "科幻片", "太阳与天空"]
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((4, 4)).astype(np.float32)
    common = {
        "item_vectors": vectors,
        "user_vector": vectors[0],
        "history": np.array([], dtype=np.int64),
        "item_map": IdMap(["a", "b", "c", "d"]),
        "item_fields": {"title": titles},
        "encoder": lambda: HashingEncoder(dim=16),
    }
    out = explain_recommendation(0, 0, query="太空冒险", **common)  # space adventure
    assert [f["matched_terms"] for f in out["query"]["fields"]] == [["太空"]]
    out = explain_recommendation(0, 2, query="科幻电影", **common)  # science-fiction film
    assert out["query"]["fields"][0]["matched_terms"] == ["科幻"]
    out = explain_recommendation(0, 3, query="太空冒险", **common)  # shares characters (太, 空), no word
    assert out["query"]["fields"][0]["matched_terms"] == []


def test_term_contributions_name_chinese_words_and_drop_one_word_at_a_time() -> None:
    space = _RecordingSpace()
    item = space.encoder.encode(["太空漫游"])[0]
    terms = term_contributions("太空冒险电影 Star Wars", item, space)  # type: ignore[arg-type]
    assert sorted(t.term for t in terms) == sorted(["太空", "冒险", "电影", "Star", "Wars"])
    # the query, then the query without each word in turn (no spaces put between Chinese words)
    assert space.seen == [
        "太空冒险电影 Star Wars",
        "冒险电影 Star Wars",
        "太空电影 Star Wars",
        "太空冒险 Star Wars",
        "太空冒险电影 Wars",
        "太空冒险电影 Star",
    ]
    by_term = {t.term: t.contribution for t in terms}
    assert max(by_term, key=lambda t: by_term[t]) == "太空"  # the word the item shares weighs most


def test_term_contributions_of_english_are_unchanged() -> None:
    space = _RecordingSpace()
    item = space.encoder.encode(["trail shoes"])[0]
    terms = term_contributions("Trail-running shoes", item, space)  # type: ignore[arg-type]
    assert [t.term for t in terms][0] in {"Trail", "shoes"}
    assert sorted(t.term for t in terms) == ["Trail", "running", "shoes"]
    assert space.seen == ["Trail-running shoes", "running shoes", "Trail shoes", "Trail running"]
