"""``autoray serve --ingress``: which HTTP ingress a Ray started by the command gets."""

from __future__ import annotations

import os

import pytest
import typer

from autoray.cli.serve import HAPROXY_SWITCH, _choose_ingress


@pytest.mark.parametrize(("ingress", "switch"), [("haproxy", "1"), ("proxy", "0")])
def test_a_ray_the_command_starts_gets_the_chosen_ingress(
    monkeypatch: pytest.MonkeyPatch, ingress: str, switch: str
) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv(HAPROXY_SWITCH, "unset")  # restored after the test, whatever it sets
    _choose_ingress(ingress, None)
    assert os.environ[HAPROXY_SWITCH] == switch


def test_a_cluster_keeps_its_own_ingress(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HAPROXY_SWITCH, "unset")
    _choose_ingress("haproxy", "ray://head:10001")
    assert os.environ[HAPROXY_SWITCH] == "unset"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    _choose_ingress("haproxy", None)
    assert os.environ[HAPROXY_SWITCH] == "unset"


def test_an_unknown_ingress_names_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(typer.Exit) as exit_info:
        _choose_ingress("nginx", None)
    assert exit_info.value.exit_code == 2
    assert "haproxy, proxy" in capsys.readouterr().err
