"""Engine identity: one string naming everything that can change a case's score.

A case row is only comparable with another (and only reused when a run resumes) if both were
produced by the same dataset content, the same check semantics, the same case runner and the
same prompt template. The identity reads like ``decider:3f2a9c0b1d4e/checks-1/runner-1/prompt-1``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from autoray.checks import CHECKS_VERSION

if TYPE_CHECKING:
    from autoray.cases import Dataset, GoldenCase

RUNNER_VERSION = "runner-1"
# Bump when DEFAULT_SYSTEM_PROMPT / AGENTIC_SYSTEM_PROMPT in autoray.cases, or the way the
# runner phrases a case to the model, changes. Lives here so that cases can import it without
# a cycle (cases -> identity -> checks).
PROMPT_VERSION = "prompt-1"
DATASET_HASH_CHARS = 12


def dataset_hash(cases: Iterable[GoldenCase]) -> str:
    """sha256 (hex) over the score-relevant content of ``cases``, independent of their order.

    Covered: id, route, effective system prompt, prompt, files, check and reference steps.
    Not covered: language, difficulty and the reference/wrong answer texts, which describe a
    case but never reach a model under test or its grader.
    """
    payload = sorted((_case_payload(case) for case in cases), key=lambda item: item["id"])
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _case_payload(case: GoldenCase) -> dict[str, Any]:
    return {
        "id": case.id,
        "route": case.route,
        "system": case.system_prompt,
        "prompt": case.prompt,
        "files": dict(case.files),
        "check": case.check.model_dump(mode="json"),
        "steps": [step.model_dump(mode="json") for step in case.reference.steps],
    }


def dataset_identity(name: str, cases: Iterable[GoldenCase]) -> str:
    """``<name>:<first 12 hex of the dataset hash>``; what :class:`Dataset` carries."""
    return f"{name}:{dataset_hash(cases)[:DATASET_HASH_CHARS]}"


def engine_identity(dataset: Dataset, *, runner_version: str = RUNNER_VERSION) -> str:
    """``<dataset identity>/<checks version>/<runner version>/<prompt version>``."""
    return f"{dataset.identity}/{CHECKS_VERSION}/{runner_version}/{PROMPT_VERSION}"
