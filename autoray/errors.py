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


class ProviderError(AutorayError):
    """A model provider call failed after its retries (the model's failure, a score-0 row)."""


class StoreError(AutorayError):
    """The database rejected an operation or is at an unexpected schema version."""
