"""The upstream resolver: which endpoint a table model or a client-named model goes to."""

from __future__ import annotations

from typing import Any

from autoray.config import ModelEntry, PriceConfig
from autoray.results import ModelKey
from serve.upstreams import Upstream, UpstreamResolver, model_label

PRICE = PriceConfig(input_per_mtok=1.0, output_per_mtok=2.0)
SIM_URL = "http://127.0.0.1:9/v1"


def _sim(model_id: str, variant: str | None = None, **extra: Any) -> ModelEntry:
    return ModelEntry(
        id=model_id,
        variant=variant,
        provider="simulated",
        price=PRICE,
        skill={"default": 1.0},
        **extra,
    )


def _real(model_id: str, variant: str | None = None, **extra: Any) -> ModelEntry:
    fields: dict[str, Any] = {
        "id": model_id,
        "variant": variant,
        "provider": "openai",
        "price": PRICE,
        "base_url": "https://api.example.com/v1",
        "api_key_env": "EXAMPLE_KEY",
    }
    return ModelEntry(**(fields | extra))


def test_labels_are_id_or_id_at_variant() -> None:
    assert model_label(ModelKey("gpt", None)) == "gpt"
    assert model_label(ModelKey("gpt", "high")) == "gpt@high"


def test_a_real_entry_resolves_to_its_endpoint_with_its_key_name() -> None:
    entry = _real("gpt-4o", "high", api_model="gpt-4o-2024", timeout_s=12)
    upstream = UpstreamResolver([entry], sim_url=SIM_URL).resolve(ModelKey("gpt-4o", "high"))
    assert upstream == Upstream(
        key=ModelKey("gpt-4o", "high"),
        base_url="https://api.example.com/v1",
        wire_model="gpt-4o-2024",
        api_key_env="EXAMPLE_KEY",
        simulated=False,
        timeout_s=12,
        price=PRICE,
    )
    assert upstream.chat_url == "https://api.example.com/v1/chat/completions"


def test_a_simulated_entry_goes_to_the_farm_with_no_key() -> None:
    upstream = UpstreamResolver([_sim("sim", "fast")], sim_url=SIM_URL).resolve(
        ModelKey("sim", "fast")
    )
    assert upstream is not None and upstream.simulated
    assert (upstream.base_url, upstream.wire_model, upstream.api_key_env) == (
        SIM_URL,
        "sim@fast",
        None,
    )


def test_without_a_farm_simulated_entries_resolve_to_nothing() -> None:
    resolver = UpstreamResolver([_sim("sim"), _real("gpt")], sim_url=None)
    assert resolver.resolve(ModelKey("sim", None)) is None
    assert resolver.by_name("sim") is None
    assert resolver.names() == ["gpt"]


def test_an_unknown_model_resolves_to_nothing() -> None:
    assert UpstreamResolver([_real("gpt")], sim_url=None).resolve(ModelKey("gpt", "x")) is None


def test_a_later_entry_overrides_an_earlier_one_of_the_same_model() -> None:
    run_entries = [_sim("gpt"), _sim("other")]
    override = _real("gpt", base_url="https://gateway.example.com/v1")
    resolver = UpstreamResolver([*run_entries, override], sim_url=SIM_URL)
    upstream = resolver.resolve(ModelKey("gpt", None))
    assert upstream is not None and not upstream.simulated
    assert upstream.base_url == "https://gateway.example.com/v1"
    assert resolver.names() == ["other", "gpt"]


def test_client_names_label_colon_variant_unique_id_and_wire_name() -> None:
    resolver = UpstreamResolver(
        [_real("gpt", "high", api_model="gpt-wire"), _sim("sim", "fast")], sim_url=SIM_URL
    )
    for name in ("gpt@high", "gpt:high", "gpt", "gpt-wire"):
        assert resolver.by_name(name) == resolver.resolve(ModelKey("gpt", "high")), name
    for name in ("sim@fast", "sim:fast", "sim"):
        assert resolver.by_name(name) == resolver.resolve(ModelKey("sim", "fast")), name
    assert resolver.by_name("gpt@low") is None and resolver.by_name("nope") is None


def test_a_bare_id_shared_by_variants_is_ambiguous_unless_one_has_no_variant() -> None:
    two = UpstreamResolver([_sim("m", "a"), _sim("m", "b")], sim_url=SIM_URL)
    assert two.by_name("m") is None and two.by_name("m@b") == two.resolve(ModelKey("m", "b"))
    with_plain = UpstreamResolver([_sim("m", "a"), _sim("m")], sim_url=SIM_URL)
    assert with_plain.by_name("m") == with_plain.resolve(ModelKey("m", None))


def test_ids_that_contain_a_colon_are_found_by_their_label() -> None:
    resolver = UpstreamResolver([_real("llama3:8b"), _real("llama3", "8b")], sim_url=None)
    assert resolver.by_name("llama3:8b") == resolver.resolve(ModelKey("llama3:8b", None))
    assert resolver.by_name("llama3@8b") == resolver.resolve(ModelKey("llama3", "8b"))


def test_names_list_every_reachable_model_in_entry_order() -> None:
    resolver = UpstreamResolver(
        [_real("gpt", "high"), _sim("sim"), _real("gpt", "low")], sim_url=SIM_URL
    )
    assert resolver.names() == ["gpt@high", "sim", "gpt@low"]
