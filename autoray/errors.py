"""Error types shared across autoray.

Every error message says what was wrong, quotes the offending value, and says how to fix it.
Errors are plain ``Exception`` subclasses with a single message argument so that they pickle
across Ray actor boundaries unchanged.

Infrastructure errors (:class:`InfrastructureError` and subclasses) are never written as a
score-0 case row: the failure policy retries them, and a lane that exhausts its retries is
recorded as dead instead.
"""

from __future__ import annotations


class AutorayError(Exception):
    """Base class for errors autoray raises on purpose, with a message meant for a user."""


class InvalidRouteError(AutorayError, ValueError):
    """A route string is malformed, unknown, or pairs a subtype with the wrong task type."""


class ConfigError(AutorayError, ValueError):
    """A configuration file or value is invalid; the message names the field and the fix."""


class BudgetExceededError(AutorayError, ValueError):
    """``entries x repetitions`` needs more live containers than the budget allows."""


class DatasetError(AutorayError, ValueError):
    """A golden-case file is invalid; the message names the file and the case."""


class InfrastructureError(AutorayError):
    """Something outside the model failed (sandbox capacity, engine down, lost actor).

    Retried by the failure policy; never recorded as a score-0 row.
    """


class SandboxUnavailableError(InfrastructureError):
    """The sandbox could not be started or reached (capacity, engine down, start failure)."""


class ProviderUnavailableError(InfrastructureError):
    """The model's endpoint could not be used: connection refused or reset, DNS, TLS, HTTP
    401/403, 404 on the model, 429 or 5xx after the provider's own retries, or a missing key.

    None of these says anything about the model's skill: once they were score-0 rows, and a
    run with an unset key variable published a table that routed everything away from that
    model (issue 9, finding 1). The message names the model and the endpoint, never the key.
    """


class GraderUnavailableError(InfrastructureError):
    """A ``program`` check's grader could not be staged or spawned in the sandbox (an
    ``OSError`` outside the model's reach); once a silent score 0 (issue 9, finding 8b)."""


class PreflightError(AutorayError):
    """A check before a run starts failed (a key variable missing on a node, an endpoint that
    does not answer); nothing was created, and the message names the model and the fix."""


class ProviderError(AutorayError):
    """A model call failed in a way that is the model's own doing (its timeout, a malformed
    tool call, a context-length 400): a score-0 row with this message as its error."""


class ModelTimeoutError(ProviderError):
    """The model did not answer within the entry's ``timeout_s`` on any attempt: its own
    timeout, a score-0 row marked ``timed_out``, like a case that runs past its deadline."""


class StoreError(AutorayError):
    """The database rejected an operation or is at an unexpected schema version."""
