"""Client keys: parsing, bearer matching and stable key ids."""

from __future__ import annotations

import pytest

from serve.auth import ANONYMOUS, ClientKeys


def test_no_keys_means_every_request_is_anonymous() -> None:
    keys = ClientKeys.parse(None)
    assert not keys.required
    assert keys.identify(None) == ANONYMOUS


def test_keys_are_read_comma_separated_and_identified_by_position() -> None:
    keys = ClientKeys.parse(" alpha , beta,,")
    assert keys.keys == ("alpha", "beta")
    assert keys.identify("Bearer alpha") == "key-1"
    assert keys.identify("bearer beta") == "key-2"


def test_missing_wrong_or_malformed_bearer_is_refused() -> None:
    keys = ClientKeys(("alpha",))
    for header in (None, "", "alpha", "Basic alpha", "Bearer ", "Bearer alph", "Bearer alphaa"):
        assert keys.identify(header) is None, header


def test_keys_come_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTORAY_TEST_KEYS", "k1,k2")
    assert ClientKeys.from_env("AUTORAY_TEST_KEYS").identify("Bearer k2") == "key-2"


def test_repr_never_shows_a_key() -> None:
    assert "alpha" not in repr(ClientKeys(("alpha",)))
