"""The route classifiers: features, the embedded model and its training, CV, evaluation, the
baseline, the LLM answer parser and the factory. Training on the full set happens once per
session (the process-wide default classifier); smaller models train on a few routes."""

from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from autoray.classify import (
    MAX_CLASSIFY_CHARS,
    TOP_ROUTES,
    EmbeddedClassifier,
    build_classifier,
    default_classifier,
    features,
    train_embedded,
)
from autoray.classify.baseline import train_baseline
from autoray.classify.embedded import (
    Combine,
    EmbeddedModel,
    ModelSpec,
    RowSpace,
    design_matrix,
    fit_logistic,
    fit_model,
    training_hash,
    training_texts,
)
from autoray.classify.evaluation import (
    Evaluation,
    Interval,
    evaluate,
    length_stats,
    paired_difference,
    wilson_interval,
)
from autoray.classify.features import (
    FeatureSpec,
    KeyTable,
    char_keys,
    fit_block,
    fit_blocks,
    prose,
    struct_keys,
    word_keys,
)
from autoray.classify.llm import LLMFailure, parse_answer, system_prompt
from autoray.classify.selection import (
    DEFAULT_SPEC,
    CvScore,
    _Fold,
    best,
    cross_validate,
    folds,
    grid,
)
from autoray.errors import ConfigError, DatasetError
from autoray.labelled import LabelledRequest, load_requests, split
from autoray.taxonomy import ROUTES, parse_route

REQUESTS = load_requests()
TRAIN = split(REQUESTS, "train")
EVAL = split(REQUESTS, "eval")
FEW_ROUTES = ROUTES[:3] + ROUTES[9:11]
SMALL = tuple(r for r in REQUESTS if r.route in FEW_ROUTES)
SMALL_SPEC = ModelSpec(FeatureSpec(word_ngrams=1, char_ngrams=(2, 4), structural=True), c=10.0)


@pytest.fixture(scope="session")
def embedded() -> EmbeddedClassifier:
    return default_classifier()


@pytest.fixture(scope="module")
def small_model() -> EmbeddedClassifier:
    return train_embedded(split(SMALL, "train"), SMALL_SPEC)


# --- features ---------------------------------------------------------------------------------


def test_word_keys_are_lowercased_ngrams_of_two_or_more_word_characters() -> None:
    assert word_keys("Fix the a NPE in CartService", 2) == [
        "fix",
        "the",
        "npe",
        "in",
        "cartservice",
        "fix the",
        "the npe",
        "npe in",
        "in cartservice",
    ]
    assert word_keys("anything", 0) == []


def test_char_keys_hash_each_ngram_of_the_padded_text_the_same_way_everywhere() -> None:
    keys = char_keys("ab  AB", 2, 3)
    # " ab ab " has 6 bigrams and 5 trigrams; case and runs of spaces do not matter
    assert len(keys) == 11
    counts = Counter(keys.tolist())
    assert counts[char_keys("ab", 2, 2)[1]] == 2  # "ab" occurs twice
    assert np.array_equal(char_keys("Ab", 2, 3), char_keys("aB", 2, 3))
    assert not np.array_equal(char_keys("ab", 2, 2), char_keys("ba", 2, 2))
    assert len(char_keys("", 2, 5)) == 1  # "  " (the padding) is the one bigram
    assert len(char_keys("x\ud800y", 2, 5)) > 0  # a lone surrogate is a character, not an error


def test_char_keys_are_the_documented_polynomial_of_each_ngram() -> None:
    seed, prime = 14695981039346656037, 1099511628211
    for text in ("Fix  the NPE", "x\ud800y🙂"):
        padded = " " + " ".join(text.lower().split()) + " "
        expected = []
        for n in range(1, 5):
            for i in range(len(padded) - n + 1):
                value = seed * prime**n + sum(
                    ord(c) * prime ** (n - 1 - j) for j, c in enumerate(padded[i : i + n])
                )
                expected.append(value % 2**64)
        assert char_keys(text, 1, 4).tolist() == expected


def test_char_hashes_do_not_collide_on_the_training_texts() -> None:
    seen: dict[int, str] = {}
    for text in training_texts(TRAIN[::3]):
        padded = " " + " ".join(text.lower().split()) + " "
        grams = [padded[i : i + n] for n in range(2, 6) for i in range(len(padded) - n + 1)]
        for gram, key in zip(grams, char_keys(text, 2, 5).tolist(), strict=True):
            assert seen.setdefault(key, gram) == gram, f"{gram!r} and {seen[key]!r} collide"
    assert len(seen) > 10_000


def test_char_keys_are_the_same_in_a_fresh_process() -> None:
    script = (
        "from autoray.classify.features import char_keys; "
        "print(char_keys('def f(): pass', 2, 5)[:4].tolist())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) == char_keys("def f(): pass", 2, 5)[:4].tolist()


def test_prose_drops_fenced_code_and_pasted_lines() -> None:
    text = (
        "fix this please:\n```python\nx = 1\n```\nTraceback (most recent call last):\n"
        '  File "a.py", line 2, in f\n    at com.acme.Main(Main.java:3)\n$ ls -la\nthanks'
    )
    kept = prose(text)
    assert "fix this please" in kept and "thanks" in kept
    for pasted in ("x = 1", 'File "a.py"', "Main.java", "ls -la"):
        assert pasted not in kept


def test_struct_keys_name_what_a_request_carries() -> None:
    text = 'why?\n```\nTraceback (most recent call last):\n  File "a.py", line 3\n```\n1 failed'
    keys = struct_keys(text)
    assert {"<code_fence>", "<stack_trace>", "<test_output>", "<length_1>"} <= set(keys)
    assert "<opens_with_question_word>" in keys
    assert struct_keys("fix it") == ["<length_0>"]
    assert struct_keys("x" * 2000) == ["<length_4>"]


def test_key_table_finds_every_key_with_its_column_and_nothing_else() -> None:
    rng = np.random.default_rng(7)
    keys = np.unique(rng.integers(1, 2**63, 20_000, dtype=np.uint64) * np.uint64(2))
    table = KeyTable.of(keys)
    absent = keys[:500] + np.uint64(1)  # odd, so never a key
    found = table.find(np.concatenate([keys, absent, np.zeros(1, dtype=np.uint64)]))
    assert found.tolist() == [*range(len(keys)), *[len(keys)] * 501]
    assert len(table.window) <= 16
    with_zero = KeyTable.of(np.array([0, 1, 3], dtype=np.uint64))  # empty slots then hold 2
    assert with_zero.find(np.arange(5, dtype=np.uint64)).tolist() == [0, 1, 3, 2, 3]
    assert KeyTable.of(np.zeros(0, dtype=np.uint64)).find(keys[:3]).tolist() == [0, 0, 0]


def test_a_structural_sign_skipped_by_its_substrings_is_one_its_regex_would_not_find() -> None:
    texts = [r.text for r in REQUESTS] + [
        "$ ls\n>>> x\nPS C:\\> dir\n+++ b\n--- a/x\n@@ -1 +1 @@\n1) one\n2. two",
        '\tat com.acme.Main(Main.java:3)\npanic: boom\nFile "a.py", line 3',
        "$x >y at(z) 1.5 a) b",
    ]
    searches = [check for _, check in features._STRUCTURE if isinstance(check, features._Search)]
    assert sum(bool(search.needs) for search in searches) == 4
    for search in searches:
        assert [search(t) for t in texts] == [bool(search.pattern.search(t)) for t in texts]
        assert any(search(t) for t in texts)


def test_word_block_is_what_scikit_learn_tfidf_computes() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    spec = FeatureSpec(word_ngrams=2, char_ngrams=None, sublinear_tf=True)
    texts = training_texts(SMALL[:60])
    block = fit_block("word", spec, texts)
    reference = TfidfVectorizer(analyzer=lambda t: word_keys(t, 2), sublinear_tf=True)
    expected = reference.fit_transform(texts)
    ours = design_matrix([block], texts)
    columns = [block.index[key] for key in reference.get_feature_names_out()]
    assert np.allclose(ours[:, columns].toarray(), expected.toarray())


# --- the embedded model -----------------------------------------------------------------------


def test_row_space_fit_is_the_direct_fit() -> None:
    from sklearn.linear_model import LogisticRegression

    requests = split(SMALL, "train")
    texts, labels = training_texts(requests), [r.route for r in requests]
    rows = design_matrix(fit_blocks(SMALL_SPEC.features, texts), texts)
    coef, intercept = fit_logistic(RowSpace.of(rows), labels, c=10.0)
    direct = LogisticRegression(C=10.0, max_iter=5000, tol=1e-8).fit(rows, labels)
    ours = rows @ coef + intercept
    theirs = rows @ direct.coef_.T + direct.intercept_
    assert np.array_equal(ours.argmax(axis=1), theirs.argmax(axis=1))
    assert np.abs(ours - theirs).max() < 0.05


def test_training_is_deterministic(small_model: EmbeddedClassifier) -> None:
    again = train_embedded(split(SMALL, "train"), SMALL_SPEC)
    assert again.name == small_model.name
    texts = [r.text for r in split(SMALL, "eval")]
    assert again.predict(texts) == small_model.predict(texts)
    for ours, theirs in zip(again.model.members, small_model.model.members, strict=True):
        assert np.array_equal(ours.coef, theirs.coef)


def test_a_classifier_unpickled_in_another_process_answers_the_same(
    small_model: EmbeddedClassifier, tmp_path: Path
) -> None:
    path = tmp_path / "classifier.pickle"
    path.write_bytes(pickle.dumps(small_model))
    text = "add a --dry-run flag to the deploy script"
    script = (
        "import json, pickle, sys; "
        "classifier = pickle.loads(open(sys.argv[1], 'rb').read()); "
        f"print(json.dumps(classifier.probabilities({text!r})))"
    )
    for seed in ("1", "2"):  # Python's string hashes differ from this process's
        done = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        assert np.allclose(json.loads(done.stdout), small_model.probabilities(text), atol=1e-12)


def test_name_says_which_data_and_setting_trained_it(small_model: EmbeddedClassifier) -> None:
    assert re.fullmatch(r"embedded:tfidf-lr:[0-9a-f]{8}", small_model.name)
    train = split(SMALL, "train")
    digest = small_model.name.rsplit(":", 1)[1]
    assert training_hash(train, SMALL_SPEC.label()) == digest
    assert training_hash(train[1:], SMALL_SPEC.label()) != digest
    assert training_hash(train, DEFAULT_SPEC.label()) != digest
    renamed = [train[0].model_copy(update={"text": train[0].text + "!"}), *train[1:]]
    assert training_hash(renamed, SMALL_SPEC.label()) != digest


def test_average_combines_one_member_per_block() -> None:
    spec = ModelSpec(SMALL_SPEC.features, c=10.0, combine="average")
    train = split(SMALL, "train")
    model = fit_model(spec, training_texts(train), [r.route for r in train])
    assert [tuple(b.kind for b in m.blocks) for m in model.members] == [("word",), ("char",)]
    assert model.probabilities("add a flag").sum() == pytest.approx(1.0)


def test_training_needs_requests_of_two_routes_and_some_features() -> None:
    only = split(tuple(r for r in REQUESTS if r.route == ROUTES[0]), "train")
    with pytest.raises(DatasetError, match="a classifier needs two"):
        train_embedded(only)
    with pytest.raises(DatasetError, match="training split of the set is empty"):
        train_embedded(())
    blind = ModelSpec(FeatureSpec(word_ngrams=0, char_ngrams=None))
    with pytest.raises(DatasetError, match="reads no features"):
        train_embedded(split(SMALL, "train"), blind)


def test_default_classifier_is_trained_once_on_the_training_split(
    embedded: EmbeddedClassifier,
) -> None:
    assert default_classifier() is embedded
    assert build_classifier() is embedded
    assert embedded.model.routes == tuple(sorted(ROUTES))
    assert embedded.name.endswith(training_hash(TRAIN, DEFAULT_SPEC.label()))


def test_classification_lists_the_best_routes_with_probabilities(
    embedded: EmbeddedClassifier,
) -> None:
    text = EVAL[0].text
    result = embedded.classify(text)
    assert len(result.top) == TOP_ROUTES
    probabilities = [score.probability for score in result.top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert (result.route, result.confidence) == (result.top[0].route, probabilities[0])
    assert embedded.model.probabilities(text).sum() == pytest.approx(1.0)
    assert (result.task_type, result.subtask_type) == tuple(result.route.split("/"))
    assert result.chars_read == len(text) and not result.truncated and result.fallback is None
    assert result.as_dict()["route"] == result.route
    assert embedded.predict([text]) == [result.route]


def test_a_long_request_is_read_through_its_bounded_prefix(embedded: EmbeddedClassifier) -> None:
    head = "Our nightly export job crashes, traceback below. Please fix it.\n"
    text = head + "x = compute(row)\n" * 300_000  # about 5 MB
    result = embedded.classify(text)
    assert result.truncated and result.chars_read == MAX_CLASSIFY_CHARS
    prefix = embedded.classify(text[:MAX_CLASSIFY_CHARS])
    assert not prefix.truncated
    assert (prefix.route, prefix.top) == (result.route, result.top)


@pytest.mark.parametrize("text", ["", "   \n\t", "?!", "\ud800", "🙂" * 10])
def test_odd_texts_do_not_raise(embedded: EmbeddedClassifier, text: str) -> None:
    result = embedded.classify(text)
    assert result.route in ROUTES
    assert 0 < result.confidence <= 1


@pytest.mark.parametrize(
    ("text", "task_type"),
    [
        (
            "Write pytest unit tests for this function, covering empty input and unicode:\n\n"
            "def slugify(title: str) -> str:\n    return re.sub(r'\\W+', '-', title).lower()",
            "implementation",
        ),
        (
            "Rename these variables and split this 200-line function into smaller ones; "
            "behaviour must stay exactly the same.",
            "refactoring",
        ),
        (
            "Design a URL shortener that handles 10k writes/s and 1M reads/s: storage, "
            "caching, id generation, and how it fails over between regions.",
            "planning_design",
        ),
    ],
)
def test_clear_requests_go_to_their_task_type(
    embedded: EmbeddedClassifier, text: str, task_type: str
) -> None:
    assert embedded.classify(text).task_type == task_type


def test_the_embedded_classifier_learns_far_beyond_chance(embedded: EmbeddedClassifier) -> None:
    result = evaluate(embedded.name, embedded.predict, EVAL)
    assert result.accuracy > 3 / len(ROUTES)


def _reference_probabilities(model: EmbeddedModel, texts: list[str]) -> np.ndarray:
    """Each member's training-time design matrix times its weights, softmaxed, averaged: the
    probabilities scikit-learn's ``predict_proba`` would give, computed without the serving path.
    """
    total = np.zeros((len(texts), len(model.routes)))
    for member in model.members:
        scores = design_matrix(member.blocks, texts) @ member.coef + member.intercept
        shifted = np.exp(scores - scores.max(axis=1, keepdims=True))
        total += shifted / shifted.sum(axis=1, keepdims=True)
    return total / len(model.members)


def _assert_serves_as_trained(classifier: EmbeddedClassifier, requests: Sequence[LabelledRequest]):
    texts = training_texts(requests)
    expected = _reference_probabilities(classifier.model, texts)
    served = np.array([classifier.probabilities(text) for text in texts])
    assert np.abs(served - expected).max() < 1e-6
    routes = [classifier.model.routes[i] for i in expected.argmax(axis=1)]
    assert [classifier.classify(r.text).route for r in requests] == routes
    assert classifier.predict([r.text for r in requests]) == routes


def test_serving_gives_the_training_time_probabilities_for_every_labelled_request(
    embedded: EmbeddedClassifier,
) -> None:
    _assert_serves_as_trained(embedded, REQUESTS)


@pytest.mark.parametrize(
    ("features", "combine"),
    [
        (FeatureSpec(word_ngrams=1, char_ngrams=None), "joint"),
        (FeatureSpec(word_ngrams=0, char_ngrams=(3, 6)), "joint"),
        (
            FeatureSpec(word_ngrams=2, char_ngrams=(2, 4), structural=True, prose_words=True),
            "joint",
        ),
        (FeatureSpec(word_ngrams=1, char_ngrams=(2, 5), sublinear_tf=True), "average"),
    ],
)
def test_serving_matches_training_for_other_settings(
    features: FeatureSpec, combine: Combine
) -> None:
    classifier = train_embedded(split(SMALL, "train"), ModelSpec(features, 10.0, combine))
    _assert_serves_as_trained(classifier, SMALL)


# --- cross-validation -------------------------------------------------------------------------


def test_folds_are_stratified_disjoint_and_fixed() -> None:
    train = split(SMALL, "train")
    first = folds(train, 5, 0)
    assert first == folds(train, 5, 0)
    assert first != folds(train, 5, 1)
    for fit_on, held in first:
        assert not set(fit_on) & set(held)
        assert len(fit_on) + len(held) == len(train)
        per_route = Counter(train[i].route for i in held)
        assert max(per_route.values()) - min(per_route.values()) <= 1
    assert sorted(i for _, held in first for i in held) == list(range(len(train)))


def test_a_fold_scores_exactly_the_model_training_would_build() -> None:
    train = split(SMALL, "train")
    fit_on, held = folds(train, 5, 0)[0]
    fold = _Fold(train, fit_on, held)
    for spec in (SMALL_SPEC, ModelSpec(SMALL_SPEC.features, c=3.0, combine="average")):
        model = fit_model(spec, fold.train_texts, fold.train_labels)
        predicted = model.predict(fold.held_texts)
        expected = sum(p == y for p, y in zip(predicted, fold.held_labels, strict=True))
        assert fold.accuracy(spec) == pytest.approx(expected / len(held))


def test_cross_validation_is_reproducible_and_best_prefers_the_simpler_tie() -> None:
    train = split(SMALL, "train")
    specs = [SMALL_SPEC, ModelSpec(SMALL_SPEC.features, c=1.0)]
    first = cross_validate(train, specs, k=3)
    assert first == cross_validate(train, specs, k=3)
    assert all(len(score.fold_accuracies) == 3 for score in first)
    tie = [CvScore(SMALL_SPEC, (0.5, 0.7)), CvScore(DEFAULT_SPEC, (0.7, 0.5))]
    assert best(tie).spec == SMALL_SPEC


def test_the_grid_is_fixed_and_holds_the_chosen_setting() -> None:
    specs = grid()
    assert len(specs) == len(set(specs))
    assert DEFAULT_SPEC in specs
    assert all(spec.combine == "joint" or len(spec.features.blocks()) == 2 for spec in specs)


# --- evaluation -------------------------------------------------------------------------------


def test_wilson_interval_matches_known_values() -> None:
    interval = wilson_interval(50, 100)
    assert (round(interval.low, 4), round(interval.high, 4)) == (0.4038, 0.5962)
    assert wilson_interval(0, 10).low == 0.0
    assert wilson_interval(10, 10).high == pytest.approx(1.0)
    assert round(wilson_interval(10, 10).low, 4) == 0.7225
    assert wilson_interval(0, 0) == Interval(0.0, 1.0)


def _evaluation(name: str, predicted: list[str]) -> Evaluation:
    actual = (ROUTES[0], ROUTES[0], ROUTES[1], ROUTES[1], ROUTES[2])
    return Evaluation(name, actual, tuple(predicted))


def test_evaluation_counts_routes_confusions_and_task_types() -> None:
    result = _evaluation("x", [ROUTES[0], ROUTES[1], ROUTES[1], ROUTES[5], ROUTES[2]])
    assert (result.hits, result.total, result.accuracy) == (3, 5, 0.6)
    assert result.task_type_accuracy == 0.8
    assert result.per_route() == {ROUTES[0]: (1, 2), ROUTES[1]: (1, 2), ROUTES[2]: (1, 1)}
    matrix = result.confusion()
    assert sum(map(sum, matrix)) == 5 and matrix[0][1] == 1 and matrix[1][5] == 1
    pairs = [(p.actual, p.predicted, p.count) for p in result.confusion_pairs()]
    assert pairs == [(ROUTES[0], ROUTES[1], 1), (ROUTES[1], ROUTES[5], 1)]


def test_paired_difference_is_fixed_by_its_seed_and_brackets_the_gap() -> None:
    better = _evaluation("a", [ROUTES[0], ROUTES[0], ROUTES[1], ROUTES[1], ROUTES[0]])
    worse = _evaluation("b", [ROUTES[1], ROUTES[0], ROUTES[0], ROUTES[1], ROUTES[0]])
    gap = paired_difference(better, worse, resamples=2000)
    assert gap == paired_difference(better, worse, resamples=2000)
    assert gap.low <= better.accuracy - worse.accuracy <= gap.high
    with pytest.raises(ValueError, match="same requests"):
        paired_difference(better, Evaluation("c", (ROUTES[0],), (ROUTES[0],)))


def test_length_stats_per_route() -> None:
    def request(number: int, text: str) -> LabelledRequest:
        return LabelledRequest(
            id=f"debugging-bug_fixing-{number:03d}",
            text=text,
            route="debugging/bug_fixing",
            split="train",
        )

    requests = [request(1, "a" * 10), request(2, "b" * 200), request(3, "c" * 500)]
    (row,) = length_stats(requests)
    assert (row.count, row.median_chars) == (3, 200)
    assert (row.short_share, row.long_share) == (pytest.approx(1 / 3), pytest.approx(1 / 3))


# --- the baseline -----------------------------------------------------------------------------


def test_baseline_is_the_untuned_scikit_learn_pipeline() -> None:
    baseline = train_baseline(split(SMALL, "train"))
    assert re.fullmatch(r"baseline:tfidf-lr:[0-9a-f]{8}", baseline.name)
    union, model = (step for _, step in baseline.pipeline.steps)
    word, chars = (vectorizer for _, vectorizer in union.transformer_list)
    assert (word.analyzer, word.ngram_range, word.sublinear_tf) == ("word", (1, 1), False)
    assert (chars.analyzer, chars.ngram_range) == ("char_wb", (2, 5))
    assert model.C == 1.0 and model.n_iter_.max() < model.max_iter
    result = baseline.classify("x" * 5000)
    assert result.truncated and result.route in FEW_ROUTES


# --- the LLM answer ---------------------------------------------------------------------------


def test_system_prompt_lists_every_route() -> None:
    prompt = system_prompt()
    assert all(route in prompt for route in ROUTES)
    assert '"route"' in prompt and '"confidence"' in prompt


@pytest.mark.parametrize(
    "content",
    [
        '{"route": "debugging/bug_fixing", "confidence": 0.8}',
        '```json\n{"route": "debugging/bug_fixing", "confidence": 0.8}\n```',
        'Sure. {"route": " debugging/bug_fixing", "confidence": 0.8, "why": "a crash"} Done.',
    ],
)
def test_parse_answer_accepts_one_json_object(content: str) -> None:
    answer = parse_answer(content)
    assert (answer.route, answer.confidence) == ("debugging/bug_fixing", 0.8)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "llm answer empty"),
        ("  ", "llm answer empty"),
        ("debugging/bug_fixing", "llm answer is not JSON"),
        ('{"route": "debugging/bugfix", "confidence": 0.5}', "llm answer invalid: route"),
        ('{"route": "debugging/bug_fixing", "confidence": 1.5}', "llm answer invalid: confidence"),
        ('{"route": "debugging/bug_fixing"}', "llm answer invalid: confidence: Field required"),
        ('["debugging/bug_fixing"]', "llm answer is not JSON"),
    ],
)
def test_parse_answer_rejects_anything_else(content: str | None, reason: str) -> None:
    with pytest.raises(LLMFailure) as failure:
        parse_answer(content)
    assert failure.value.reason.startswith(reason)
    assert len(failure.value.reason) <= 200


# --- the factory ------------------------------------------------------------------------------


def test_factory_rejects_an_llm_without_a_model_and_unknown_kinds() -> None:
    with pytest.raises(ConfigError, match="needs a model entry"):
        build_classifier("llm")
    with pytest.raises(ConfigError, match="valid: embedded, llm"):
        build_classifier("bert")  # type: ignore[arg-type]


def test_classifying_imports_no_ray_nor_web_stack() -> None:
    script = (
        "import sys; from autoray.classify import default_classifier; "
        "default_classifier().classify('fix it'); "
        "print(sorted(m for m in ('ray', 'fastapi', 'uvicorn', 'sqlalchemy', 'httpx') "
        "if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_routes_of_a_classification_parse() -> None:
    for route in default_classifier().model.routes:
        assert str(parse_route(route)) == route
