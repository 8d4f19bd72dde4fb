"""The embedded route classifier: TF-IDF blocks and a linear model, trained at first use.

No network, no GPU, no model download: it is trained on the training split of the shipped
labelled request set the first time a process asks for it (a few seconds) and kept for the life
of the process. Training is deterministic (lbfgs, no random state, sorted vocabularies), so
equal data and an equal :class:`ModelSpec` give equal weights, equal answers and an equal name;
the name ends with a hash of both, so a response says exactly which model answered.

Serving does not go through scikit-learn: a request costs one feature extraction through a
:class:`~autoray.classify.features.ServingIndex`, a gather of one float32 row per feature (its
idf and its weights side by side), two small products and a softmax, which is what
``LogisticRegression.predict_proba`` computes, minus its per-call overhead. The weights as fitted
and :meth:`EmbeddedModel.probabilities` (the training-time features) stay as the reference the
serving path is tested against: the same route for every labelled request and probabilities
within 1e-6 (float32 weights move them by about 1e-8). Serving changed, predictions did not, so
:data:`CLASSIFIER_VERSION` stayed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from autoray.classify.base import Classification, bounded_prefix, ranked_classification
from autoray.classify.features import (
    BlockKind,
    FeatureSpec,
    FittedBlock,
    ServingIndex,
    featurize,
    fit_block,
    huge_page_array,
    width,
)
from autoray.errors import DatasetError
from autoray.labelled import LabelledRequest

CLASSIFIER_VERSION = "1"
"""Bump when training or serving changes what a spec and data produce (it is in the name)."""

Combine = Literal["joint", "average"]
_MAX_ITER = 5000
_TOL = 1e-6
_EIGEN_FLOOR = 1e-10


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """Features and hyper-parameters of one embedded model.

    ``combine="joint"`` fits one logistic regression on all blocks side by side; ``"average"``
    fits one per block and averages their probabilities (an ensemble of a word model and a
    character model). ``c`` is the inverse regularisation strength.
    """

    features: FeatureSpec = field(default_factory=FeatureSpec)
    c: float = 1.0
    combine: Combine = "joint"

    def label(self) -> str:
        return f"{self.features.label()} C={self.c:g} {self.combine}"


@dataclass(frozen=True, slots=True)
class LinearMember:
    """One fitted logistic regression: its feature blocks, weights and intercepts."""

    blocks: tuple[FittedBlock, ...]
    coef: NDArray[np.float64]
    intercept: NDArray[np.float64]

    def probabilities(self, text: str) -> NDArray[np.float64]:
        columns, values = featurize(self.blocks, text)
        scores = values @ np.take(self.coef, columns, axis=0) + self.intercept
        return _softmax(scores)


@dataclass(frozen=True, slots=True)
class EmbeddedModel:
    """Routes in the order of the probability vector, and the members averaged to get it."""

    routes: tuple[str, ...]
    members: tuple[LinearMember, ...]

    def probabilities(self, text: str) -> NDArray[np.float64]:
        total = self.members[0].probabilities(text)
        for member in self.members[1:]:
            total = total + member.probabilities(text)
        return total / len(self.members)

    def predict(self, texts: Sequence[str]) -> list[str]:
        return [self.routes[int(np.argmax(self.probabilities(text)))] for text in texts]


@dataclass(frozen=True, slots=True)
class ServedMember:
    """A :class:`LinearMember` laid out for serving, one row per column: the column's idf in
    its block's place (zero in the other blocks' places), then its weights; a last row of zeros
    stands for "no column". One gather fetches everything a request needs; two small products
    give each block's squared l2 norm and its unnormalised scores. Float32 rows halve the memory
    a request reads at random and move probabilities by about 1e-8."""

    index: ServingIndex
    rows: NDArray[np.float32]
    intercept: tuple[float, ...]
    sublinear_tf: bool

    @classmethod
    def of(cls, member: LinearMember) -> ServedMember:
        blocks = member.blocks
        places = np.zeros((width(blocks) + 1, len(blocks)))
        start = 0
        for place, block in enumerate(blocks):
            places[start : start + block.size, place] = block.idf
            start += block.size
        coef = np.vstack([member.coef, np.zeros((1, member.coef.shape[1]))])
        rows = huge_page_array((len(places), len(blocks) + coef.shape[1]), np.float32, 0.0)
        rows[:] = np.hstack([places, coef])
        intercept = tuple(member.intercept.tolist())
        return cls(ServingIndex.of(blocks), rows, intercept, blocks[0].spec.sublinear_tf)

    def probabilities(self, text: str) -> list[float]:
        """What :meth:`LinearMember.probabilities` gives, from the serving layout."""
        columns, counts = self.index.count(text)
        rows = self.rows[columns]
        tf = np.log(counts) + 1.0 if self.sublinear_tf else counts.astype(np.float64)
        blocks = len(self.index.blocks)
        values = (rows[:, :blocks] * tf[:, None]).T
        per_block = (values @ rows[:, blocks:]).tolist()
        squares = (values @ values.T).tolist()
        scores = list(self.intercept)
        for block, block_scores in enumerate(per_block):
            if square := squares[block][block]:
                scale = 1 / math.sqrt(square)
                scores = [s + scale * p for s, p in zip(scores, block_scores, strict=True)]
        return _softmax_list(scores)


def _softmax_list(scores: list[float]) -> list[float]:
    top = max(scores)
    shifted = [math.exp(score - top) for score in scores]
    total = sum(shifted)
    return [value / total for value in shifted]


def _softmax(scores: NDArray[np.float64]) -> NDArray[np.float64]:
    shifted = np.exp(scores - scores.max())
    return shifted / shifted.sum()


def fit_model(spec: ModelSpec, texts: Sequence[str], labels: Sequence[str]) -> EmbeddedModel:
    """Fit ``spec`` on ``texts`` labelled with routes; deterministic for equal inputs."""
    groups = block_groups(spec)
    routes = tuple(sorted(set(labels)))
    if len(routes) < 2:
        raise DatasetError(f"training labels name {len(routes)} route(s); a classifier needs two")
    members = tuple(_fit_member(spec, group, texts, labels) for group in groups)
    return EmbeddedModel(routes, members)


def block_groups(spec: ModelSpec) -> tuple[tuple[BlockKind, ...], ...]:
    """The blocks of each member: all in one (``joint``) or one member per block."""
    kinds = spec.features.blocks()
    if not kinds:
        raise DatasetError(f"model spec {spec.label()!r} reads no features; enable a block")
    return (kinds,) if spec.combine == "joint" else tuple((kind,) for kind in kinds)


def _fit_member(
    spec: ModelSpec,
    kinds: Sequence[BlockKind],
    texts: Sequence[str],
    labels: Sequence[str],
) -> LinearMember:
    blocks = tuple(fit_block(kind, spec.features, texts) for kind in kinds)
    coef, intercept = fit_logistic(RowSpace.of(design_matrix(blocks, texts)), labels, spec.c)
    return LinearMember(blocks, coef, intercept)


@dataclass(frozen=True, slots=True)
class RowSpace:
    """Training rows re-expressed in the span of themselves, for a fast and exact L2 fit.

    With a few hundred requests and ~100,000 n-gram columns, lbfgs over the ``d x routes``
    weights took 3-13 s a fit. The L2 optimum lies in the span of the training rows
    (representer theorem), so the same objective can be solved over ``r <= n`` coordinates:
    with ``X Xᵀ = U Λ Uᵀ``, the rows of ``U Λ^½`` (:attr:`coordinates`) have the same Gram
    matrix as ``X``; a model ``B`` fitted on them is the model ``W = Xᵀ U Λ^-½ B`` on ``X``.
    Predictions agree with the direct fit; it takes a fraction of a second.
    """

    rows: Any
    coordinates: NDArray[np.float64]
    inverse: NDArray[np.float64]

    @classmethod
    def of(cls, rows: Any) -> RowSpace:
        gram = (rows @ rows.T).toarray()
        eigenvalues, eigenvectors = np.linalg.eigh(gram)
        keep = eigenvalues > _EIGEN_FLOOR * max(float(eigenvalues.max()), 1.0)
        roots = np.sqrt(eigenvalues[keep])
        basis = eigenvectors[:, keep]
        return cls(rows, basis * roots, basis / roots)

    def project(self, other: Any) -> NDArray[np.float64]:
        """Coordinates of other rows (held-out requests) in this space."""
        return np.asarray((other @ self.rows.T).toarray() @ self.inverse)

    def weights(self, coordinate_coef: NDArray[np.float64]) -> NDArray[np.float64]:
        """``(d, k)`` weights on the original columns from ``(k, r)`` coordinate weights."""
        return np.asarray(self.rows.T @ (self.inverse @ coordinate_coef.T), dtype=np.float64)


def fit_logistic(
    space: RowSpace, labels: Sequence[str], c: float
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Multinomial L2 logistic regression (scikit-learn's, lbfgs) on ``space``'s rows.

    Returns ``(coef, intercept)`` over the original columns, one column per class in sorted
    label order, two columns for two classes (softmax of ``±z/2`` is scikit-learn's sigmoid).
    """
    model = logistic_on(space.coordinates, labels, c)
    coef = space.weights(model.coef_)
    intercept = np.asarray(model.intercept_, dtype=np.float64)
    if coef.shape[1] == 1:
        coef, intercept = np.hstack([-coef / 2, coef / 2]), np.array([-1, 1]) * intercept / 2
    return np.ascontiguousarray(coef), intercept


def logistic_on(coordinates: NDArray[np.float64], labels: Sequence[str], c: float) -> Any:
    """scikit-learn's ``LogisticRegression(C=c)`` fitted to dense coordinates."""
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=_MAX_ITER, tol=_TOL)
    return model.fit(coordinates, list(labels))


def design_matrix(blocks: Sequence[FittedBlock], texts: Sequence[str]) -> Any:
    """The training rows as a CSR matrix, built by the same code that serves requests."""
    from scipy.sparse import csr_matrix

    rows = [featurize(blocks, text) for text in texts]
    indptr = np.cumsum([0] + [len(columns) for columns, _ in rows])
    indices = np.concatenate([columns for columns, _ in rows])
    data = np.concatenate([values for _, values in rows])
    return csr_matrix((data, indices, indptr), shape=(len(texts), width(blocks)))


def training_texts(requests: Sequence[LabelledRequest]) -> list[str]:
    """What a classifier reads of each request: its bounded prefix, as when serving."""
    return [bounded_prefix(request.text)[0] for request in requests]


def training_hash(requests: Sequence[LabelledRequest], description: str) -> str:
    """Eight hex digits of a hash of the training data, the model and the classifier version."""
    payload = json.dumps(
        {
            "version": CLASSIFIER_VERSION,
            "model": description,
            "data": sorted((r.id, r.route, r.text) for r in requests),
        },
        ensure_ascii=False,
    )
    return hashlib.sha256(payload.encode("utf-8", "surrogatepass")).hexdigest()[:8]


class EmbeddedClassifier:
    """The default classifier: fitted weights, served with numpy on one core."""

    def __init__(self, model: EmbeddedModel, name: str) -> None:
        self.model = model
        self.name = name
        self._served = tuple(ServedMember.of(member) for member in model.members)

    def __repr__(self) -> str:
        return f"EmbeddedClassifier(name={self.name!r}, routes={len(self.model.routes)})"

    def __reduce__(self) -> tuple[type[EmbeddedClassifier], tuple[EmbeddedModel, str]]:
        """Pickled as its model and name: the serving index holds Python's string hashes of the
        word keys, which are seeded per process, so it is built again where it is unpickled."""
        return (EmbeddedClassifier, (self.model, self.name))

    def classify(self, text: str) -> Classification:
        prefix, truncated = bounded_prefix(text)
        return ranked_classification(
            self.model.routes,
            self._probabilities(prefix),
            classifier=self.name,
            prefix=prefix,
            truncated=truncated,
        )

    def probabilities(self, text: str) -> list[float]:
        """Each route's probability (in :attr:`EmbeddedModel.routes` order) for ``text``."""
        return self._probabilities(bounded_prefix(text)[0])

    def _probabilities(self, prefix: str) -> list[float]:
        if len(self._served) == 1:
            return self._served[0].probabilities(prefix)
        each = [member.probabilities(prefix) for member in self._served]
        return [sum(route) / len(each) for route in zip(*each, strict=True)]

    def predict(self, texts: Sequence[str]) -> list[str]:
        """The route of each text (read through its bounded prefix), for evaluation."""
        routes = self.model.routes
        return [routes[int(np.argmax(self.probabilities(text)))] for text in texts]


def train_embedded(
    requests: Sequence[LabelledRequest], spec: ModelSpec | None = None
) -> EmbeddedClassifier:
    """Train on ``requests`` (callers pass the training split) with ``spec`` or the default."""
    from autoray.classify.selection import DEFAULT_SPEC

    chosen = spec or DEFAULT_SPEC
    if not requests:
        raise DatasetError("no training requests; the training split of the set is empty")
    texts = training_texts(requests)
    model = fit_model(chosen, texts, [r.route for r in requests])
    kind = "tfidf-lr" if chosen.combine == "joint" else "tfidf-lr-avg"
    return EmbeddedClassifier(model, f"embedded:{kind}:{training_hash(requests, chosen.label())}")
