"""The Serve application over real HTTP: one app (two replicas, client keys required) on the
shared local Ray, a real SQLite database under tmp, tables saved and activated as a publish
would, and the SIMULATED farm started by the replicas themselves for autoray/auto."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from autoray.table import RoutingTable
from tests.integration.serve_support import (
    CHEAP,
    MID,
    PRICEY,
    RunningApp,
    activate,
    seed,
    serve_app,
    table_of,
    wait_until,
)

pytestmark = pytest.mark.ray

BINARY_SEARCH = (
    "This binary search returns the wrong index when the target is the last element, fix it"
)
KEYS_ENV = "AUTORAY_TEST_SERVE_KEYS"
KEYS = ("key-alpha-0123", "key-beta-4567")
APP_NAME = f"autoray-test-{uuid.uuid4().hex[:6]}"
TABLE_A = table_of()
TABLE_B = table_of(default=(PRICEY, CHEAP, MID))
RELOAD_BOUND_S = 15.0


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both tables stored, none active: the app starts without a table."""
    path = tmp_path_factory.mktemp("serve-app") / "db" / "autoray.db"
    seed(_url(path), [TABLE_A, TABLE_B], activate=None)
    return path


@pytest.fixture(scope="module")
def app(ray_cluster: None, db_path: Path) -> Iterator[RunningApp]:
    from serve.app import AutorayIngress
    from serve.args import AppArgs

    args = AppArgs(
        database_url=_url(db_path),
        num_replicas=2,
        table_check_interval_s=1.0,
        api_keys_env=KEYS_ENV,
    )
    deployment: Any = AutorayIngress
    application = deployment.options(
        num_replicas=args.num_replicas,
        ray_actor_options={"num_cpus": 0, "runtime_env": {"env_vars": {KEYS_ENV: ",".join(KEYS)}}},
    ).bind(args)
    with serve_app(application, APP_NAME) as running:
        running.client.headers["authorization"] = f"Bearer {KEYS[0]}"
        yield running


@pytest.fixture
def table_a(app: RunningApp, db_path: Path) -> RunningApp:
    """TABLE_A active and served by every replica."""
    _activate_and_wait(app, db_path, TABLE_A)
    return app


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _decide(app: RunningApp, **body: Any) -> dict[str, Any]:
    response = app.client.post("/v1/decide", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


def _ask(app: RunningApp, text: str = BINARY_SEARCH, **extra: Any) -> dict[str, Any]:
    return _decide(app, messages=[{"role": "user", "content": text}], **extra)


def _served_versions(app: RunningApp, samples: int = 12) -> set[str | None]:
    """The table versions the replicas report (several calls reach both replicas)."""
    return {app.client.get("/healthz").json()["table_version"] for _ in range(samples)}


def _activate_and_wait(app: RunningApp, db_path: Path, table: RoutingTable) -> float:
    from actors.table_events import notify_table_activated

    started = time.monotonic()
    activate(_url(db_path), table)
    notify_table_activated(table.version, wait_s=5)
    wait_until(lambda: _served_versions(app) == {table.version}, timeout=RELOAD_BOUND_S)
    return time.monotonic() - started


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return dict(body["error"])


# --- tables: none, then active, then reloaded ---------------------------------------------


def test_without_an_active_table_the_routing_table_is_404_then_200_once_activated(
    app: RunningApp, db_path: Path
) -> None:
    if _served_versions(app) == {None}:
        missing = app.client.get("/v1/routing-table")
        assert missing.status_code == 404
        assert "autoray bench run" in _error(missing)["message"]
        null = _ask(app)
        assert null["decision"] is None and null["reason"] == "no_table"
        assert null["classification"]["route"].startswith("debugging/")
    _activate_and_wait(app, db_path, TABLE_A)
    found = app.client.get("/v1/routing-table")
    assert found.status_code == 200
    body = found.json()
    assert body["version"] == TABLE_A.version and len(body["routes"]) == 18


def test_binary_search_request_gets_a_debugging_route_and_its_first_model(
    table_a: RunningApp,
) -> None:
    body = _ask(table_a)
    decision = body["decision"]
    assert decision["route"].startswith("debugging/")
    assert body["classification"]["route"] == decision["route"]
    assert decision["model"] == CHEAP.model_id and decision["variant"] is None
    assert decision["table_version"] == TABLE_A.version
    assert decision["sticky"] is False and body["reason"] is None
    assert [alt["model_id"] for alt in body["alternatives"]] == [MID.model_id, PRICEY.model_id]
    same = _decide(table_a, prompt=BINARY_SEARCH)["decision"]
    assert (same["model"], same["route"]) == (decision["model"], decision["route"])


def test_activating_another_version_changes_the_answer_within_seconds(
    table_a: RunningApp, db_path: Path
) -> None:
    assert _ask(table_a)["decision"]["model"] == CHEAP.model_id
    took = _activate_and_wait(table_a, db_path, TABLE_B)
    assert took < RELOAD_BOUND_S
    decision = _ask(table_a)["decision"]
    assert (decision["model"], decision["table_version"]) == (PRICEY.model_id, TABLE_B.version)
    _activate_and_wait(table_a, db_path, TABLE_A)  # rollback, the same way
    assert _ask(table_a)["decision"]["model"] == CHEAP.model_id


def test_the_periodic_check_reloads_without_a_notice(table_a: RunningApp, db_path: Path) -> None:
    activate(_url(db_path), TABLE_B)
    took = wait_until(lambda: _served_versions(table_a) == {TABLE_B.version}, timeout=15)
    assert took < RELOAD_BOUND_S
    _activate_and_wait(table_a, db_path, TABLE_A)


def test_a_database_that_vanishes_leaves_the_last_table_in_service(
    table_a: RunningApp, db_path: Path
) -> None:
    hidden = db_path.parent.with_name("db-hidden")
    db_path.parent.rename(hidden)
    try:
        wait_until(
            lambda: all(
                table_a.client.get("/healthz").json()["last_check_error"] for _ in range(6)
            ),
            timeout=15,
        )
        health = table_a.client.get("/healthz").json()
        assert health["table_version"] == TABLE_A.version
        assert _ask(table_a)["decision"]["table_version"] == TABLE_A.version
    finally:
        if db_path.parent.exists():
            shutil.rmtree(db_path.parent)  # the empty directory a check may have made
        hidden.rename(db_path.parent)
    wait_until(
        lambda: (
            not any(table_a.client.get("/healthz").json()["last_check_error"] for _ in range(6))
        ),
        timeout=15,
    )


# --- decisions ----------------------------------------------------------------------------


def test_modes_denials_and_null_decisions(table_a: RunningApp) -> None:
    assert _ask(table_a, mode="best_accuracy")["decision"]["model"] == PRICEY.model_id
    denied = _ask(table_a, denied_models=[CHEAP.model_id])["decision"]
    assert (denied["model"], denied["variant"]) == (MID.model_id, "medium")
    everyone = [CHEAP.model_id, f"{MID.model_id}:medium", PRICEY.model_id]
    null = _ask(table_a, denied_models=everyone)
    assert null["decision"] is None and null["reason"] == "all_denied"
    assert "denied_models" in null["message"]


def test_context_constraint_is_honoured(table_a: RunningApp) -> None:
    body = _ask(table_a, constraints={"min_context_tokens": 1000})
    assert body["decision"]["model"] == CHEAP.model_id  # unknown context is not proof


def test_a_5_mb_prompt_is_classified_on_a_bounded_prefix(table_a: RunningApp) -> None:
    prompt = BINARY_SEARCH + " " + "the loop runs past the end of the array. " * 125_000
    assert len(prompt) > 5_000_000
    body = _decide(table_a, prompt=prompt)
    classification = body["classification"]
    assert classification["truncated"] is True
    assert 0 < classification["chars_read"] <= 10_000
    assert body["decision"] is not None


def test_classifications_are_cached_per_replica(table_a: RunningApp) -> None:
    text = f"Add a retry with backoff to the HTTP client ({uuid.uuid4().hex})"
    cached = [_ask(table_a, text)["classification"]["cached"] for _ in range(3)]
    assert cached[0] is False and any(cached[1:])  # 3 requests, 2 replicas: one repeats


# --- sessions -----------------------------------------------------------------------------


def test_two_replicas_give_a_session_the_same_model_across_requests(table_a: RunningApp) -> None:
    session = f"s-{uuid.uuid4().hex}"
    first = _ask(table_a, session_id=session, denied_models=[CHEAP.model_id])["decision"]
    assert (first["model"], first["variant"]) == (MID.model_id, "medium")
    later = [_ask(table_a, session_id=session)["decision"] for _ in range(20)]
    assert {(d["model"], d["variant"], d["sticky"]) for d in later} == {
        (MID.model_id, "medium", True)
    }
    assert _ask(table_a)["decision"]["model"] == CHEAP.model_id  # no session: the fresh pick
    replicas = {table_a.client.get("/healthz").json()["replica"] for _ in range(20)}
    assert len(replicas) == 2


def test_session_can_be_read_and_deleted(table_a: RunningApp) -> None:
    session = f"s-{uuid.uuid4().hex}"
    _ask(table_a, session_id=session)
    found = table_a.client.get(f"/v1/sessions/{session}")
    assert found.status_code == 200
    body = found.json()
    assert (body["session_id"], body["model"]) == (session, CHEAP.model_id)
    assert body["route"].startswith("debugging/") and body["table_version"] == TABLE_A.version
    assert 0 < body["expires_in_s"] <= 1800
    assert table_a.client.delete(f"/v1/sessions/{session}").status_code == 204
    gone = table_a.client.get(f"/v1/sessions/{session}")
    assert gone.status_code == 404 and _error(gone)["param"] == "session_id"
    assert table_a.client.delete(f"/v1/sessions/{session}").status_code == 404
    too_long = table_a.client.get(f"/v1/sessions/{'x' * 201}")
    assert too_long.status_code == 422 and _error(too_long)["param"] == "session_id"


# --- models, health, errors ---------------------------------------------------------------


def test_models_lists_auto_and_the_tables_models(table_a: RunningApp) -> None:
    response = table_a.client.get("/v1/models")
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list"
    ids = [card["id"] for card in body["data"]]
    assert ids[0] == "autoray/auto"
    assert {"sim/cheap", "sim/mid@medium", "sim/pricey"} <= set(ids)


def test_healthz_reports_the_table_and_needs_no_key(table_a: RunningApp) -> None:
    response = httpx.get(f"{table_a.url}/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["table_version"] == TABLE_A.version
    assert body["table_loaded_at"] and body["last_check_error"] is None


def test_unknown_paths_answer_in_the_openai_error_shape(table_a: RunningApp) -> None:
    response = table_a.client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert _error(response)["message"]


# --- client keys --------------------------------------------------------------------------

V1_CALLS = [
    ("POST", "/v1/decide", {"prompt": BINARY_SEARCH}),
    ("POST", "/v1/chat/completions", {"model": "autoray/auto", "messages": []}),
    ("GET", "/v1/models", None),
    ("GET", "/v1/routing-table", None),
    ("GET", "/v1/sessions/abc", None),
    ("DELETE", "/v1/sessions/abc", None),
]


@pytest.mark.parametrize(("method", "path", "body"), V1_CALLS)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-key", f"Basic {KEYS[0]}"])
def test_every_v1_route_needs_a_client_key(
    table_a: RunningApp, method: str, path: str, body: Any, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"authorization": authorization}
    response = httpx.request(method, f"{table_a.url}{path}", json=body, headers=headers)
    assert response.status_code == 401
    error = _error(response)
    assert error["type"] == "authentication_error" and KEYS_ENV in error["message"]
    assert KEYS[0] not in response.text


def test_a_right_key_is_accepted_and_its_usage_counted(table_a: RunningApp) -> None:
    headers = {"authorization": f"Bearer {KEYS[1]}"}
    for _ in range(3):
        response = httpx.post(
            f"{table_a.url}/v1/decide", json={"prompt": BINARY_SEARCH}, headers=headers
        )
        assert response.status_code == 200
    series = re.compile(
        r'^ray_autoray_client_requests_total\{[^}]*endpoint="decide"[^}]*key="key-2"[^}]*\} '
        r"(\S+)$",
        re.MULTILINE,
    )
    wait_until(lambda: _metric_total(series) >= 3, timeout=90, every=1)


def test_metrics_have_prometheus_names(table_a: RunningApp) -> None:
    _ask(table_a)
    text = _metrics_text()
    wait_until(lambda: "ray_autoray_decisions_total{" in _metrics_text(), timeout=90, every=1)
    text = _metrics_text()
    assert "# TYPE ray_autoray_decisions_total counter" in text
    assert "ray_autoray_decision_latency_seconds_bucket{" in text
    assert not re.search(r"^ray_autoray_decisions\{", text, re.MULTILINE)  # no stray gauge
    assert KEYS[0] not in text and KEYS[1] not in text


def _metrics_text() -> str:
    import ray

    port = ray._private.worker.global_worker.node.metrics_export_port
    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text


def _metric_total(series: re.Pattern[str]) -> float:
    return sum(float(match) for match in series.findall(_metrics_text()))


# --- autoray/auto through the official openai client --------------------------------------


def test_openai_client_gets_the_models_answer_and_the_three_headers(table_a: RunningApp) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{table_a.url}/v1", api_key=KEYS[0], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="autoray/auto", messages=[{"role": "user", "content": BINARY_SEARCH}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers["x-autoray-model"] == CHEAP.model_id
    assert raw.headers["x-autoray-route"].startswith("debugging/")
    assert raw.headers["x-autoray-table-version"] == TABLE_A.version


def test_openai_client_streams_through_autoray_auto(table_a: RunningApp) -> None:
    import openai

    client = openai.OpenAI(base_url=f"{table_a.url}/v1", api_key=KEYS[0], max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="autoray/auto",
        messages=[{"role": "user", "content": BINARY_SEARCH}],
        stream=True,
    )
    assert raw.headers["x-autoray-model"] == CHEAP.model_id
    assert raw.headers["x-autoray-table-version"] == TABLE_A.version
    chunks = list(raw.parse())
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert len(chunks) > 1 and text


def test_chat_decision_uses_the_session_and_body_fields(table_a: RunningApp) -> None:
    session = f"chat-{uuid.uuid4().hex}"
    body = {
        "model": "autoray/auto",
        "messages": [{"role": "user", "content": BINARY_SEARCH}],
        "denied_models": [CHEAP.model_id],
    }
    first = table_a.client.post(
        "/v1/chat/completions", json=body, headers={"x-autoray-session": session}
    )
    assert first.status_code == 200, first.text
    assert first.headers["x-autoray-model"] == "sim/mid@medium"
    sticky = table_a.client.get(f"/v1/sessions/{session}").json()
    assert (sticky["model"], sticky["variant"]) == (MID.model_id, "medium")


def test_chat_with_no_decision_and_no_fallback_is_503_with_the_reason(table_a: RunningApp) -> None:
    body = {
        "model": "autoray/auto",
        "messages": [{"role": "user", "content": BINARY_SEARCH}],
        "denied_models": [CHEAP.model_id, MID.model_id, PRICEY.model_id],
    }
    response = table_a.client.post("/v1/chat/completions", json=body)
    assert response.status_code == 503
    error = _error(response)
    assert error["code"] == "all_denied" and "fallback_model" in error["message"]
    assert response.headers["x-autoray-route"].startswith("debugging/")


def test_chat_passes_a_named_model_through_and_refuses_an_unknown_one(table_a: RunningApp) -> None:
    messages = [{"role": "user", "content": "hello"}]
    named = table_a.client.post(
        "/v1/chat/completions", json={"model": "sim/pricey", "messages": messages}
    )
    assert named.status_code == 200, named.text
    assert named.headers["x-autoray-model"] == "sim/pricey"
    unknown = table_a.client.post(
        "/v1/chat/completions", json={"model": "gpt-nope", "messages": messages}
    )
    assert unknown.status_code == 404 and _error(unknown)["param"] == "model"


def test_chat_refuses_bad_bodies_naming_the_field(table_a: RunningApp) -> None:
    cases = [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "autoray/auto", "messages": []}, "messages"),
        (
            {"model": "autoray/auto", "messages": [{"role": "bot", "content": "x"}]},
            "messages[0].role",
        ),
        (
            {
                "model": "autoray/auto",
                "messages": [{"role": "user", "content": "x"}],
                "stream": "yes",
            },
            "stream",
        ),
        (
            {
                "model": "autoray/auto",
                "messages": [{"role": "user", "content": "x"}],
                "mode": "fast",
            },
            "mode",
        ),
        ({"model": "autoray/auto", "messages": [{"role": "system", "content": "x"}]}, "messages"),
    ]
    for body, param in cases:
        response = table_a.client.post("/v1/chat/completions", json=body)
        assert 400 <= response.status_code < 500, (body, response.text)
        assert _error(response)["param"] == param, (body, response.text)
