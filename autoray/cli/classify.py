"""``autoray classify``: which route a request goes to, and how well the classifier does.

Three ways in, exactly one per call: a request ``TEXT``; ``--file REQUESTS.jsonl`` with one
``{"text": ...}`` object per line (answers come one JSON object per line, in order, with
``--json``); or ``--evaluate``, which trains the embedded classifier and the baseline on the
labelled set's training split and reports both on its evaluation split. The embedded
classifier trains at first use (about a second); ``--classifier llm`` asks a model from a
benchmark config and falls back to the embedded classifier, saying so, when it cannot answer.
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from autoray.classify.base import Classification, Classifier
from autoray.cli._common import JsonOption, fail, print_json
from autoray.errors import AutorayError
from autoray.labelled import BUILTIN_REQUESTS

CLASSIFIER_CHOICES = ("embedded", "llm")


@dataclass(frozen=True, slots=True)
class _LlmOptions:
    config: Path | None
    model: str | None
    variant: str | None
    timeout_s: float


def register(app: typer.Typer) -> None:
    app.command("classify")(classify_command)


def classify_command(
    text: Annotated[
        str | None, typer.Argument(help="The request to classify (its first 4000 characters).")
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help='JSONL file, one {"text": "..."} object per line.'),
    ] = None,
    evaluate: Annotated[
        bool,
        typer.Option(
            "--evaluate", help="Accuracy of the embedded classifier and the baseline on eval."
        ),
    ] = False,
    requests: Annotated[
        str,
        typer.Option("--requests", help="Labelled set for --evaluate: builtin or a directory."),
    ] = BUILTIN_REQUESTS,
    classifier: Annotated[
        str, typer.Option("--classifier", help="embedded (default) or llm.")
    ] = "embedded",
    config: Annotated[
        Path | None, typer.Option("--config", help="Benchmark config with the llm's model.")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model id (from --config) for --classifier llm.")
    ] = None,
    variant: Annotated[str | None, typer.Option("--variant", help="Its variant, if any.")] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds the llm may take before the fallback.")
    ] = 2.0,
    as_json: JsonOption = False,
) -> None:
    """Classify a request (or a file of them) into a route, or evaluate the classifier."""
    _one_input(text, file, evaluate)
    if evaluate:
        _evaluate(requests, as_json)
        return
    llm = _LlmOptions(config, model, variant, timeout)
    texts = [text or ""] if file is None else read_request_file(file)
    with ExitStack() as stack:
        chosen = _classifier(classifier, llm, stack)
        results = [_classify(chosen, each) for each in texts]
    if file is None:
        _print_one(results[0], as_json)
    else:
        _print_many(results, as_json)


def _one_input(text: str | None, file: Path | None, evaluate: bool) -> None:
    given = [name for name, value in (("TEXT", text), ("--file", file)) if value is not None]
    given += ["--evaluate"] if evaluate else []
    if len(given) > 1:
        fail(f"give one of TEXT, --file, --evaluate, not {' and '.join(given)}")
    if not given:
        fail("nothing to classify; give TEXT, --file REQUESTS.jsonl or --evaluate")
    if text is not None and not text.strip():
        fail("TEXT is empty; give the request as a user would type it, e.g. 'fix this crash'")


def read_request_file(path: Path) -> list[str]:
    """Every request text of a JSONL file, in order; an error names the file, line and field."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read --file {str(path)!r}: {exc}; give a UTF-8 JSONL file")
    texts = [_request_line(path, number, line) for number, line in enumerate(lines, 1)]
    found = [text for text in texts if text is not None]
    if not found:
        fail(f'{path} holds no requests; write one {{"text": "..."}} object per line')
    return found


def _request_line(path: Path, number: int, line: str) -> str | None:
    if not line.strip():
        return None
    where = f"{path} line {number}"
    try:
        record = json.loads(line)
    except ValueError as exc:
        fail(f'{where}: invalid JSON ({exc}); write one {{"text": "..."}} object per line')
    if not isinstance(record, dict):
        fail(f'{where}: expected a JSON object {{"text": "..."}}, got {type(record).__name__}')
    if "text" not in record:
        fail(f"{where}: missing required field 'text'; give the request as \"text\"")
    if not isinstance(record["text"], str):
        kind = type(record["text"]).__name__
        fail(f"{where}: field 'text' must be a string, got {kind}; quote the request")
    return str(record["text"])


def _classifier(kind: str, llm: _LlmOptions, stack: ExitStack) -> Classifier:
    from autoray.classify.factory import build_classifier

    if kind not in CLASSIFIER_CHOICES:
        fail(f"--classifier {kind!r} is not a classifier; valid: {', '.join(CLASSIFIER_CHOICES)}")
    if kind == "embedded":
        return build_classifier("embedded")
    try:
        return _llm_classifier(llm, stack)
    except AutorayError as exc:
        fail(str(exc))


def _llm_classifier(llm: _LlmOptions, stack: ExitStack) -> Classifier:
    from autoray.classify.factory import build_classifier
    from autoray.cli.run_case import find_model
    from autoray.config import load_config
    from autoray.settings import Settings

    if llm.config is None or llm.model is None:
        fail("--classifier llm needs --config CONFIG.yaml and --model ID (a model of that config)")
    if llm.timeout_s <= 0:
        fail(f"--timeout {llm.timeout_s:g} must be above 0 seconds; the default is 2")
    cfg = load_config(llm.config)
    entry = find_model(cfg, llm.model, llm.variant)
    sim_url = None
    if entry.provider == "simulated":
        from autoray.providers.simfarm import farm_url_for  # FastAPI and uvicorn load only here

        sim_url = farm_url_for(cfg, Settings.from_env(), stack)
    chosen = build_classifier("llm", llm_model=entry, sim_url=sim_url, timeout_s=llm.timeout_s)
    stack.callback(getattr(chosen, "close", lambda: None))
    return chosen


def _classify(classifier: Classifier, text: str) -> Classification:
    return classifier.classify(text)


def _print_one(result: Classification, as_json: bool) -> None:
    if as_json:
        print_json(result.as_dict())
        return
    typer.echo("\n".join(render_classification(result)))


def _print_many(results: list[Classification], as_json: bool) -> None:
    for result in results:
        if as_json:
            typer.echo(json.dumps(result.as_dict()))
        else:
            typer.echo(f"{result.route}\t{result.confidence:.2f}\t{result.classifier}")


def render_classification(result: Classification) -> list[str]:
    lines = [
        f"route: {result.route}",
        f"task_type: {result.task_type}",
        f"subtask_type: {result.subtask_type}",
        f"confidence: {result.confidence:.2f}",
        f"classifier: {result.classifier}",
        "top: " + ", ".join(f"{s.route} {s.probability:.2f}" for s in result.top),
    ]
    if result.truncated:
        lines.append(f"read: the first {result.chars_read} characters (the request was longer)")
    if result.fallback:
        lines.append(f"fallback: {result.fallback}")
    return lines


def _evaluate(requests: str, as_json: bool) -> None:
    from autoray.classify.report import compare, comparison_dict, render_comparison
    from autoray.labelled import load_requests

    try:
        comparison = compare(load_requests(requests))
    except AutorayError as exc:
        fail(str(exc))
    if as_json:
        print_json(comparison_dict(comparison))
    else:
        typer.echo("\n".join(render_comparison(comparison)))
