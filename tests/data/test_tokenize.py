"""The shared word splitter: English exactly as ``\\w+``, Chinese segmented into words by jieba."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from lmrec.data import Dataset
from lmrec.data.tokenize import has_han, join_words, words

_OLD = re.compile(r"\w+", re.UNICODE)


@pytest.mark.parametrize(
    "text",
    ["Star Wars (1977)", "Café_au-lait, naïve 2001: a Space Odyssey!", "  ", "", "L'Âge d'or x2 ÉTÉ", "a_b-c.d"],
)
def test_text_without_chinese_splits_as_the_old_regex(text: str) -> None:
    assert words(text) == _OLD.findall(text.lower())
    assert words(text, lowercase=False) == _OLD.findall(text)
    assert words(text, mode="search") == _OLD.findall(text.lower())


def test_every_movielens_title_splits_as_the_old_regex(ml100k: Dataset) -> None:
    assert ml100k.items is not None
    titles = [str(t) for t in ml100k.items.frame["title"].tolist()]
    assert len(titles) == 1682
    assert [words(t) for t in titles] == [_OLD.findall(t.lower()) for t in titles]
    assert [words(t, lowercase=False) for t in titles] == [_OLD.findall(t) for t in titles]


def test_mixed_chinese_and_english() -> None:
    text = "我喜欢科幻电影 Star Wars"  # "I like science-fiction films Star Wars"
    # jieba's dictionary holds 科幻电影 (science-fiction film) as one word; search mode adds 科幻 and 电影
    assert words(text) == ["我", "喜欢", "科幻电影", "star", "wars"]
    assert words(text, mode="search") == ["我", "喜欢", "科幻", "电影", "科幻电影", "star", "wars"]
    assert words(text, lowercase=False) == ["我", "喜欢", "科幻电影", "Star", "Wars"]
    assert _OLD.findall(text.lower()) == ["我喜欢科幻电影", "star", "wars"]  # what the old regex gave


def test_digits_and_chinese_in_one_run_are_separated() -> None:
    # \w+ gives one token "2001太空漫游"; the digits and the two words are three tokens now
    assert words("2001太空漫游") == ["2001", "太空", "漫游"]
    assert words("太空冒险外星人") == ["太空", "冒险", "外星人"]
    assert words("太空冒险外星人", mode="search") == ["太空", "冒险", "外星", "外星人"]


def test_join_words_puts_no_space_between_chinese_words() -> None:
    assert join_words(["太空", "冒险", "star", "wars", "外星人"]) == "太空冒险 star wars 外星人"
    assert join_words(["red", "shoe"]) == "red shoe"
    assert join_words([]) == ""


def test_has_han() -> None:
    assert has_han("Star 星") and not has_han("Star Wars") and not has_han("ひらがな")


def test_bad_mode_is_named() -> None:
    with pytest.raises(ValueError, match=r"words mode must be 'precise' or 'search', got 'fast'"):
        words("x", mode="fast")  # type: ignore[arg-type]


def test_jieba_loads_only_for_chinese_and_quietly() -> None:
    code = (
        "import sys\n"
        "from lmrec.data.tokenize import words\n"
        "assert words('plain English') == ['plain', 'english']\n"
        "assert 'jieba' not in sys.modules\n"
        "assert words('浪漫喜剧') == ['浪漫', '喜剧']\n"  # romantic comedy
        "assert 'jieba' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "prefix dict" not in done.stderr and "Loading model" not in done.stderr, done.stderr
