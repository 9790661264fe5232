"""Request types: cluster request texts (TF-IDF + k-means) into named query types."""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass

from trace2eval.analysis.stats import content_order

MAX_TYPES = 8
MIN_TRACES_FOR_CLUSTERING = 8
FIT_SAMPLE = 3000  # fit on at most this many requests, then assign the rest


@dataclass(frozen=True)
class QueryTypes:
    names: list[str]
    terms: list[list[str]]
    labels: list[int]  # one per request, index into names


def _clean(text: str) -> str:
    text = re.sub(r"https?://\S+", " ", text.lower())
    text = re.sub(r"[0-9a-f]{6,}|\d+", " ", text)
    return text


def cluster_requests(texts: list[str], seed: int = 0) -> QueryTypes:
    """Name query types by their top terms; a single type when requests are few or uniform.

    The same requests give the same types in whatever order they come (a store returns traces with equal
    timestamps in any order, and k-means depends on the order of its input): they are clustered in an
    order of their own, by a hash of the text."""
    if len(texts) < MIN_TRACES_FOR_CLUSTERING:
        return QueryTypes(["all_requests"], [[]], [0] * len(texts))
    order = content_order(range(len(texts)), lambda i: texts[i])
    types = _cluster([texts[i] for i in order], seed)
    labels = [0] * len(texts)
    for position, i in enumerate(order):
        labels[i] = types.labels[position]
    return QueryTypes(types.names, types.terms, labels)


def _cluster(texts: list[str], seed: int) -> QueryTypes:
    from sklearn.cluster import KMeans
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import normalize

    vectorizer = TfidfVectorizer(
        preprocessor=_clean,
        stop_words="english",
        max_features=3000,
        min_df=2,
        ngram_range=(1, 2),
        sublinear_tf=True,
    )
    fit_texts = texts[:FIT_SAMPLE]
    try:
        matrix = vectorizer.fit_transform(fit_texts)
    except ValueError:  # empty vocabulary: requests share no terms
        return QueryTypes(["all_requests"], [[]], [0] * len(texts))
    if matrix.shape[1] < 3:
        return QueryTypes(["all_requests"], [[]], [0] * len(texts))

    # Cluster in a small dense space (LSA): k-means on 64 dimensions is fast and robust, where
    # on thousands of sparse TF-IDF columns it is slow and noisy.
    svd = TruncatedSVD(n_components=min(64, matrix.shape[1] - 1, matrix.shape[0] - 1), random_state=seed)
    with warnings.catch_warnings():  # near-identical requests leave zero variance to explain
        warnings.simplefilter("ignore", RuntimeWarning)
        reduced = normalize(svd.fit_transform(matrix))
    scored = []
    upper = min(MAX_TYPES, max(2, len(fit_texts) // 10))
    for k in range(2, upper + 1):
        with warnings.catch_warnings():  # duplicate requests make fewer distinct clusters: expected
            warnings.simplefilter("ignore")
            model = KMeans(n_clusters=k, n_init=2, random_state=seed).fit(reduced)
        if len(set(model.labels_)) < 2:
            continue
        score = silhouette_score(reduced, model.labels_, sample_size=min(2000, len(fit_texts)), random_state=seed)
        scored.append((score, k, model))
    # Silhouette creeps up as k grows on short texts: take the fewest types within 10% of the best.
    best = None
    if scored:
        top = max(score for score, _, _ in scored)
        best = next((score, model) for score, k, model in scored if score >= 0.9 * top)
    if best is None or best[0] < 0.02:
        return QueryTypes(["all_requests"], [[]], [0] * len(texts))
    model = best[1]
    if len(texts) > len(fit_texts):
        labels = list(model.predict(normalize(svd.transform(vectorizer.transform(texts)))))
    else:
        labels = list(model.labels_)

    vocab = vectorizer.get_feature_names_out()
    names, terms = [], []
    used: Counter[str] = Counter()
    fit_labels = model.labels_
    for cluster in range(model.n_clusters):
        members = matrix[fit_labels == cluster]
        weights = members.mean(axis=0).A1 if members.shape[0] else matrix.mean(axis=0).A1
        top = [vocab[i] for i in weights.argsort()[::-1][:6]]
        unigrams = [t for t in top if " " not in t][:2] or top[:1]
        name = "_".join(unigrams)
        used[name] += 1
        names.append(name if used[name] == 1 else f"{name}_{used[name]}")
        terms.append(top)
    return QueryTypes(names, terms, [int(x) for x in labels])


def prewarm() -> None:
    """Import scikit-learn (~2 s) in a background thread while traces are being read."""
    import threading

    def load():
        import sklearn.cluster  # noqa: F401
        import sklearn.decomposition  # noqa: F401
        import sklearn.feature_extraction.text  # noqa: F401
        import sklearn.metrics  # noqa: F401

    threading.Thread(target=load, daemon=True).start()
