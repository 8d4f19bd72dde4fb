"""The benchmark config: defaults, validation rules and error messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autoray.config import (
    DEFAULT_SANDBOX_IMAGE,
    BenchConfig,
    PriceConfig,
    config_snapshot,
    load_config,
    parse_config,
    resolve_dataset_spec,
)
from autoray.errors import ConfigError
from autoray.results import ModelKey

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _sim(model_id: str = "sim/a", **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": model_id,
        "provider": "simulated",
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "skill": {"default": 0.5},
    }
    entry.update(extra)
    return entry


def _openai(**extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": "gpt-x",
        "provider": "openai",
        "price": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
        "base_url": "https://api.example.com/v1",
        "api_key_env": "EXAMPLE_API_KEY",
    }
    entry.update(extra)
    return entry


def _config(**extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"name": "t", "models": [_sim()]}
    data.update(extra)
    return data


def _error(data: Any, source: str = "bench.yaml") -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    return str(info.value)


def test_defaults_follow_the_design() -> None:
    cfg = parse_config(_config(), "t")
    assert cfg.dataset == "builtin:decider"
    assert (cfg.repetitions, cfg.chunk_size, cfg.max_live_containers) == (1, 5, 100)
    assert (cfg.min_accuracy, cfg.switch_cost_factor, cfg.seed) == (0.7, 3.0, 0)
    assert cfg.best_accuracy_gap == 0.05
    assert cfg.sandbox.backend == "process" and cfg.sandbox.image is None
    assert (cfg.sandbox.timeout_s, cfg.sandbox.memory_mb, cfg.sandbox.pids_limit) == (180, 512, 256)
    assert (cfg.runner.max_steps, cfg.runner.case_timeout_s, cfg.runner.step_timeout_s) == (
        12,
        300,
        60,
    )
    assert cfg.engine.max_attempts == 6 and cfg.engine.lane_cpu == 0.01
    assert cfg.database_url is None


def test_price_cost_is_per_million_tokens() -> None:
    price = PriceConfig(input_per_mtok=1.0, output_per_mtok=4.0)
    assert price.cost_usd(1_000_000, 0) == pytest.approx(1.0)
    assert price.cost_usd(1000, 500) == pytest.approx(0.001 + 0.002)
    assert price.cost_usd(0, 0) == 0.0
    with pytest.raises(ValueError, match="token counts must be >= 0"):
        price.cost_usd(-1, 0)


def test_docker_backend_gets_the_default_image() -> None:
    cfg = parse_config(_config(sandbox={"backend": "docker"}), "t")
    assert cfg.sandbox.image == DEFAULT_SANDBOX_IMAGE == "autoray-sandbox:latest"
    own = parse_config(_config(sandbox={"backend": "docker", "image": "mine:1"}), "t")
    assert own.sandbox.image == "mine:1"


def test_model_keys_and_empty_variant() -> None:
    cfg = parse_config(
        _config(models=[_sim("a"), _sim("a", variant="fast"), _sim("b", variant="")]), "t"
    )
    assert cfg.model_keys == [ModelKey("a", None), ModelKey("a", "fast"), ModelKey("b", None)]
    assert cfg.models[1].key == ModelKey("a", "fast")


def test_skill_keys_accept_default_task_wildcard_and_full_route() -> None:
    skill = {"default": 0.1, "debugging/*": 0.9, "planning_design/system_design": 1.0}
    cfg = parse_config(_config(models=[_sim(skill=skill)]), "t")
    assert cfg.models[0].skill == skill


@pytest.mark.parametrize(
    "key", ["debug/*", "debugging/typo", "debugging", "debugging/migration", "*/*", " debugging/*"]
)
def test_bad_skill_key_is_rejected_with_valid_forms(key: str) -> None:
    message = _error(_config(models=[_sim(skill={"default": 0.5, key: 0.5})]))
    assert "models[0].skill" in message
    assert repr(key) in message
    assert "'default', 'taskType/*'" in message and "debugging/bug_fixing" in message


@pytest.mark.parametrize("value", [1.5, -0.1])
def test_skill_value_outside_unit_interval_is_rejected(value: float) -> None:
    message = _error(_config(models=[_sim(skill={"default": value})]))
    assert "outside [0, 1]" in message and repr(value) in message


def test_simulated_needs_a_default_skill() -> None:
    message = _error(_config(models=[_sim(skill={"debugging/*": 1.0})]))
    assert "models[0]" in message and "'default' key" in message
    no_skill = _sim()
    del no_skill["skill"]
    assert "'default' key" in _error(_config(models=[no_skill]))


def test_openai_entry_is_valid_with_url_and_key_name() -> None:
    cfg = parse_config(_config(models=[_openai(context_length=128000)]), "t")
    assert cfg.models[0].api_key_env == "EXAMPLE_API_KEY"
    assert cfg.models[0].context_length == 128000


def test_openai_needs_base_url_and_api_key_env() -> None:
    entry = _openai()
    del entry["base_url"], entry["api_key_env"]
    message = _error(_config(models=[entry]))
    assert "models[0]" in message and "base_url and api_key_env" in message


def test_openai_rejects_skill() -> None:
    message = _error(_config(models=[_openai(skill={"default": 0.5})]))
    assert "'skill' is only for simulated models" in message


@pytest.mark.parametrize("value", ["sk-abcdef123456", "abc def", "1KEY"])
def test_api_key_env_that_looks_like_a_key_is_rejected_without_echoing_it(value: str) -> None:
    message = _error(_config(models=[_openai(api_key_env=value)]))
    assert "models[0].api_key_env" in message and "NAME of the environment variable" in message
    assert value not in message


def test_base_url_must_be_http() -> None:
    message = _error(_config(models=[_openai(base_url="api.example.com")]))
    assert "models[0].base_url" in message and "'api.example.com'" in message


def test_duplicate_model_entries_name_the_pair_and_positions() -> None:
    models = [_sim("a"), _sim("b"), _sim("a", variant="x"), _sim("a")]
    message = _error(_config(models=models))
    assert "duplicate model entry (id 'a', variant None)" in message
    assert "models[0] and models[3]" in message


def test_unknown_fields_are_named_with_valid_fields() -> None:
    data = _config(max_live_container=5, models=[_sim(prise=1)])
    data["models"][0]["price"]["input_per_mtok_x"] = 1
    message = _error(data)
    assert "max_live_container: unknown field 'max_live_container'" in message
    assert "valid fields: name, dataset" in message and "max_live_containers" in message
    assert "models[0].prise: unknown field 'prise'; valid fields: id, variant" in message
    assert "models[0].price.input_per_mtok_x: unknown field" in message
    assert "valid fields: input_per_mtok, output_per_mtok" in message
    assert "(4 problems)" not in message and "(3 problems)" in message


def test_errors_name_file_field_path_and_value() -> None:
    data = _config(models=[_sim(), _sim("b", price={"input_per_mtok": -1, "output_per_mtok": 1})])
    message = _error(data, "conf/bench.yaml")
    assert "'conf/bench.yaml'" in message
    assert "models[1].price.input_per_mtok: Input should be greater than or equal to 0" in message
    assert "(got -1)" in message


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("repetitions", 6, "repetitions: Input should be less than or equal to 5"),
        ("repetitions", 0, "repetitions: Input should be greater than or equal to 1"),
        ("chunk_size", 0, "chunk_size: Input should be greater than or equal to 1"),
        ("max_live_containers", 0, "max_live_containers: Input should be greater"),
        ("min_accuracy", 1.5, "min_accuracy: Input should be less than or equal to 1"),
        ("switch_cost_factor", 0.5, "switch_cost_factor: Input should be greater"),
        ("best_accuracy_gap", 1.5, "best_accuracy_gap: Input should be less than or equal to 1"),
        ("best_accuracy_gap", -0.1, "best_accuracy_gap: Input should be greater than or equal"),
        ("sandbox", {"backend": "vm"}, "sandbox.backend: Input should be 'process', 'docker' or"),
        ("sandbox", {"memory_mb": 32}, "sandbox.memory_mb: Input should be greater"),
        ("runner", {"max_steps": 101}, "runner.max_steps: Input should be less than or equal"),
        ("engine", {"lane_cpu": 0}, "engine.lane_cpu: Input should be greater than 0"),
        ("engine", {"backoff_max_s": 0.5}, "backoff_max_s (0.5) is below backoff_base_s"),
        ("models", [], "models: List should have at least 1 item"),
        ("name", "", "name: String should have at least 1 character"),
    ],
)
def test_range_rules(field: str, value: Any, expected: str) -> None:
    assert expected in _error(_config(**{field: value}))


def test_non_finite_numbers_are_rejected() -> None:
    message = _error(_config(min_accuracy=float("nan")))
    assert "min_accuracy" in message and "finite" in message


def test_missing_required_fields_say_what_to_add() -> None:
    message = _error({"models": [{"id": "a", "provider": "simulated", "skill": {"default": 1}}]})
    assert "name: required field is missing; add 'name'" in message
    assert "models[0].price: required field is missing; add 'price'" in message


def test_unknown_provider_lists_choices() -> None:
    message = _error(_config(models=[_sim(provider="anthropic")]))
    assert "models[0].provider: Input should be 'simulated' or 'openai'" in message


def test_top_level_must_be_a_mapping() -> None:
    assert "top level must be a mapping" in _error([1, 2], "list.yaml")
    assert "got NoneType" in _error(None, "empty.yaml")


def test_snapshot_round_trips_and_is_json_safe() -> None:
    import json

    cfg = parse_config(_config(models=[_sim(), _openai()], sandbox={"backend": "docker"}), "t")
    snapshot = config_snapshot(cfg)
    assert json.loads(json.dumps(snapshot)) == snapshot
    assert parse_config(snapshot, "snapshot") == cfg


def test_config_is_immutable() -> None:
    cfg = parse_config(_config(), "t")
    with pytest.raises(ValueError, match="frozen"):
        cfg.repetitions = 3


def test_load_config_reads_yaml(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: t\nmodels:\n  - id: a\n    provider: simulated\n"
        "    price: {input_per_mtok: 1, output_per_mtok: 2}\n    skill: {default: 0.5}\n"
    )
    cfg = load_config(path)
    assert isinstance(cfg, BenchConfig) and cfg.model_keys == [ModelKey("a", None)]


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist; pass the path"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path)


def test_load_config_bad_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: t\nmodels:\n  - id: [unclosed\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value) and "not valid YAML at line" in str(info.value)


def test_load_config_empty_or_scalar_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(path)
    path.write_text("just a string\n")
    with pytest.raises(ConfigError, match="got str"):
        load_config(path)


def test_load_config_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text("name: t\nrepetitons: 2\nmodels: []\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert repr(str(path)) in str(info.value)
    assert "repetitons: unknown field 'repetitons'" in str(info.value)


def test_example_small_loads() -> None:
    cfg = load_config(EXAMPLES / "small.yaml")
    assert cfg.name == "small"
    assert cfg.model_keys == [
        ModelKey("sim/cheap-debugger", None),
        ModelKey("sim/generalist", None),
    ]
    assert (cfg.repetitions, cfg.chunk_size, cfg.max_live_containers) == (1, 5, 8)
    assert cfg.sandbox.backend == "process" and cfg.min_accuracy == 0.7
    cheap, general = cfg.models
    assert cheap.skill == {"default": 0.0, "debugging/*": 1.0} and cheap.latency_ms == 5
    assert (cheap.price.input_per_mtok, cheap.price.output_per_mtok) == (0.1, 0.4)
    assert general.skill == {"default": 1.0}
    assert (general.price.input_per_mtok, general.price.output_per_mtok) == (1.0, 4.0)


def test_example_demo_loads() -> None:
    cfg = load_config(EXAMPLES / "demo.yaml")
    assert len(cfg.models) == 4 and cfg.repetitions == 2 and cfg.max_live_containers == 16
    assert all(entry.provider == "simulated" for entry in cfg.models)
    assert any(entry.variant for entry in cfg.models)
    assert len({entry.price for entry in cfg.models}) == 4


def test_relative_dataset_path_is_relative_to_the_config(tmp_path: Path) -> None:
    config = tmp_path / "conf" / "bench.yaml"
    assert resolve_dataset_spec("cases", config) == str((tmp_path / "conf" / "cases").resolve())
    assert resolve_dataset_spec("builtin:decider", config) == "builtin:decider"
    assert resolve_dataset_spec(str(tmp_path / "abs"), config) == str(tmp_path / "abs")
