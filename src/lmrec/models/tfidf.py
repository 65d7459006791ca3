"""Content baseline: TF-IDF item vectors from the catalogue text, users as the mean of their items."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from lmrec.data.dataset import Dataset
from lmrec.data.tokenize import has_han, words
from lmrec.models.base import Recommender, register

# scikit-learn (slow to import) is imported in fit, its only user.

__all__ = ["TfidfRecommender", "tfidf_tokens"]


def tfidf_tokens(text: str) -> list[str]:
    """The word analyzer's tokens of (already lowercased) ``text``.

    scikit-learn's default word pattern ``\\b\\w\\w+\\b`` is the ``\\w+`` runs of two or more
    characters; that is kept for text without Chinese. Chinese runs are segmented with jieba's
    search-engine cut (`lmrec.data.tokenize.words`), and a one-character Chinese word is kept
    (``猫``, cat, is a word).
    """
    return [t for t in words(text, lowercase=False, mode="search") if len(t) > 1 or has_han(t)]


@register("tfidf")
class TfidfRecommender(Recommender):
    """Cosine between a user's mean TF-IDF history vector and each item's TF-IDF vector.

    Item text comes from ``dataset.items.texts(item_map)`` (the catalogue's text fields, or the
    ``template`` when given). Any item with text is scored, including items that never occur in
    training, which is this model's point: it ranks cold items. Items without text score 0.

    The word analyzer splits with `tfidf_tokens`: English as scikit-learn's default pattern does,
    Chinese segmented into words (jieba), so an item and a query that share a Chinese word match on
    it. ``analyzer="char"`` (character n-grams, default range (1, 2)) suits other scripts written
    without spaces (Japanese).

    Scores read the current history (``seen_``), so ``observe`` folds new interactions in.

    Args:
        analyzer: ``"word"``, ``"char"`` or ``"char_wb"`` (scikit-learn's TfidfVectorizer).
        ngram_range: n-gram lengths; None means (1, 1) for words and (1, 2) for characters.
        min_df: drop terms in fewer than this many items.
        max_features: keep only this many most frequent terms (None: all).
        template: optional text template over catalogue columns, such as ``"{title}. {genres}"``.
        random_state: unused (deterministic); kept for a uniform signature.
    """

    def __init__(
        self,
        analyzer: Literal["word", "char", "char_wb"] = "word",
        ngram_range: tuple[int, int] | None = None,
        min_df: int = 1,
        max_features: int | None = None,
        template: str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.max_features = max_features
        self.template = template
        self.random_state = random_state

    def _ngrams(self) -> tuple[int, int]:
        if self.ngram_range is None:
            return (1, 1) if self.analyzer == "word" else (1, 2)
        lo, hi = (int(x) for x in self.ngram_range)
        return lo, hi

    def _vectorizer(self, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        word = self.analyzer == "word"
        return TfidfVectorizer(
            analyzer=self.analyzer,
            tokenizer=tfidf_tokens if word else None,
            token_pattern=None if word else r"(?u)\b\w\w+\b",
            ngram_range=self._ngrams(),
            min_df=1 if vocabulary is not None else self.min_df,
            max_features=None if vocabulary is not None else self.max_features,
            sublinear_tf=True,
            vocabulary=vocabulary,
        )

    def _fit(self, dataset: Dataset) -> None:
        if self.analyzer not in ("word", "char", "char_wb"):
            raise ValueError(f"TfidfRecommender analyzer must be 'word', 'char' or 'char_wb', got {self.analyzer!r}")
        if self.ngram_range is not None:
            rng = tuple(self.ngram_range)
            if len(rng) != 2 or not 1 <= rng[0] <= rng[1]:
                raise ValueError(
                    f"TfidfRecommender ngram_range must be (lo, hi) with 1 <= lo <= hi, got {self.ngram_range!r}"
                )
        if self.min_df < 1:
            raise ValueError(f"TfidfRecommender min_df must be >= 1, got {self.min_df!r}")
        if self.max_features is not None and self.max_features < 1:
            raise ValueError(f"TfidfRecommender max_features must be >= 1 or None, got {self.max_features!r}")
        if dataset.items is None:
            raise ValueError(
                f"TfidfRecommender needs item text but dataset {dataset.name!r} has no item catalogue "
                "(dataset.items is None)"
            )
        texts = dataset.items.texts(self.item_map_, template=self.template)
        if not any(t.strip() for t in texts):
            raise ValueError(f"TfidfRecommender: no item of dataset {dataset.name!r} has text in its catalogue")
        vectorizer = self._vectorizer()
        try:
            matrix = vectorizer.fit_transform(texts)
        except ValueError as err:  # e.g. "empty vocabulary" when min_df removes every term
            raise ValueError(f"TfidfRecommender could not build a vocabulary: {err}") from None
        self.item_matrix_ = normalize(sp.csr_matrix(matrix, dtype=np.float32), norm="l2", axis=1)
        self.vocabulary_ = np.asarray(vectorizer.get_feature_names_out(), dtype=str)
        self.idf_ = vectorizer.idf_.astype(np.float64)

    def transform_texts(self, texts: list[str]) -> sp.csr_matrix:
        """L2-normalised TF-IDF vectors of new texts (a new item, a query), shape (n, vocabulary)."""
        self._check_fitted()
        vocab = {term: i for i, term in enumerate(self.vocabulary_.tolist())}
        vectorizer = self._vectorizer(vocab)
        vectorizer.idf_ = self.idf_  # a fixed vocabulary plus the fitted idf: no refit needed
        return normalize(sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32), norm="l2", axis=1)

    def user_profiles(self, user_idx: np.ndarray) -> sp.csr_matrix:
        """(n, vocabulary) L2-normalised mean of each user's history item vectors (zero rows if none)."""
        user_idx = self._check_users(user_idx)
        history = self.seen_[user_idx]
        counts = np.maximum(np.asarray(history.sum(axis=1)).ravel(), 1.0)
        mean = sp.diags(1.0 / counts) @ history @ self.item_matrix_
        return normalize(sp.csr_matrix(mean, dtype=np.float32), norm="l2", axis=1)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        profiles = self.user_profiles(user_idx)
        return (profiles @ self.item_matrix_.T).toarray().astype(np.float32, copy=False)

    def item_similarities(self, item_idx: np.ndarray) -> np.ndarray:
        rows = self.item_matrix_[np.asarray(item_idx, dtype=np.int64)]
        return (rows @ self.item_matrix_.T).toarray()

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        m = self.item_matrix_
        arrays = {
            "item_data": m.data,
            "item_indices": m.indices,
            "item_indptr": m.indptr,
            "vocabulary": self.vocabulary_,
            "idf": self.idf_,
        }
        return arrays, {"vocabulary_size": int(m.shape[1])}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        shape = (self.seen_.shape[1], int(meta["vocabulary_size"]))
        parts = (arrays["item_data"], arrays["item_indices"], arrays["item_indptr"])
        self.item_matrix_ = sp.csr_matrix(parts, shape=shape)
        self.vocabulary_ = arrays["vocabulary"]
        self.idf_ = arrays["idf"]
