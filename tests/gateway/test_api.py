"""The gateway as an OpenAI client sees it: the official SDK, errors, auth, limits."""

from __future__ import annotations

import httpx
import openai
import pytest

from testkit.mock_openai import MockConfig, ThreadedMock
from testkit.openai_errors import assert_openai_error
from tests.gateway.conftest import (
    ADMIN,
    AUTH,
    KEY,
    RunningGateway,
    make_config,
    running_gateway,
)

EXPECTED = "tok0 tok1 tok2 tok3 tok4 tok5 tok6 tok7 "


def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base, api_key=KEY, max_retries=0, timeout=20)


def test_sdk_chat(gateway: RunningGateway) -> None:
    reply = client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}]
    )
    assert reply.choices[0].message.content == EXPECTED
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens == 8


def test_sdk_chat_stream(gateway: RunningGateway) -> None:
    stream = client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}], stream=True
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == EXPECTED
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_sdk_completions_stream_and_not(gateway: RunningGateway) -> None:
    sdk = client(gateway)
    reply = sdk.completions.create(model="code", prompt="def f():", max_tokens=4)
    assert reply.choices[0].text == "tok0 tok1 tok2 tok3 "
    stream = sdk.completions.create(model="code", prompt="def f():", stream=True)
    assert "".join(c.choices[0].text for c in stream) == EXPECTED


def test_sdk_models_lists_groups_ids_only_for_users(gateway: RunningGateway) -> None:
    models = client(gateway).models.list()
    assert [m.id for m in models.data] == ["chat", "code"]
    raw = httpx.get(f"{gateway.base}/models", headers=AUTH).json()
    assert all(set(card) == {"id", "object", "created", "owned_by"} for card in raw["data"])
    assert "127.0.0.1" not in str(raw)


def test_models_show_backends_to_admin_keys(gateway: RunningGateway) -> None:
    raw = httpx.get(f"{gateway.base}/models", headers=ADMIN).json()
    backends = raw["data"][0]["backends"]
    assert [b["order"] for b in backends] == [1, 2]
    assert all(b["state"] == "up" for b in backends)
    assert all(b["api_base"].startswith("http://127.0.0.1:") for b in backends)


def test_sdk_embeddings_forwarded_when_configured(config, mocks) -> None:  # type: ignore[no-untyped-def]
    embedder = ThreadedMock(MockConfig()).start()
    try:
        with running_gateway(config, embedding_url=f"http://127.0.0.1:{embedder.port}") as gw:
            result = client(gw).embeddings.create(model="embed", input=["a", "b"])
            assert len(result.data) == 2
            assert result.data[0].embedding == [0.1, 0.2, 0.3]
    finally:
        embedder.close()


def test_embeddings_404_when_not_configured(gateway: RunningGateway) -> None:
    response = httpx.post(f"{gateway.base}/embeddings", headers=AUTH, json={"input": "a"})
    assert_openai_error(response, 404, code="model_not_found", contains="EMBEDDING_URL")


def test_unknown_model_is_404_naming_known_models(gateway: RunningGateway) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client(gateway).chat.completions.create(
            model="gpt-4", messages=[{"role": "user", "content": "hi"}]
        )
    body = err.value.body
    assert isinstance(body, dict)
    assert "gpt-4" in body["message"] and "Known models: chat, code." in body["message"]
    assert body["code"] == "model_not_found" and body["param"] == "model"


def test_missing_or_wrong_key_is_401(gateway: RunningGateway) -> None:
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base, api_key="sk-wrong", max_retries=0).models.list()
    response = httpx.get(f"{gateway.base}/models")
    assert_openai_error(response, 401, error_type="authentication_error", code="invalid_api_key")
    assert response.headers["www-authenticate"] == 'Bearer realm="p2"'
    wrong = httpx.get(f"{gateway.base}/models", headers={"Authorization": "Bearer sk-wrong"})
    assert_openai_error(wrong, 401, code="invalid_api_key", contains="Incorrect API key")


def test_health_and_metrics_open_without_key(gateway: RunningGateway) -> None:
    assert httpx.get(f"{gateway.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{gateway.url}/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "models": {"chat": "ok", "code": "ok"}}
    metrics = httpx.get(f"{gateway.url}/metrics")
    assert metrics.status_code == 200
    assert "p2_gateway_backend_up{" in metrics.text


def test_open_paths_setting_lists_the_paths_without_key(config) -> None:  # type: ignore[no-untyped-def]
    with running_gateway(config, open_paths="/health, /v1/models") as gw:
        assert httpx.get(f"{gw.base}/models").status_code == 200
        assert httpx.get(f"{gw.url}/health").status_code == 200
        assert_openai_error(httpx.get(f"{gw.url}/metrics"), 401, code="invalid_api_key")
        chat = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
        refused = httpx.post(f"{gw.base}/chat/completions", json=chat)
        assert_openai_error(refused, 401, code="invalid_api_key")


def test_admin_keys_are_accepted_too(config) -> None:  # type: ignore[no-untyped-def]
    with running_gateway(config, admin_keys="sk-admin") as gw:
        admin = {"Authorization": "Bearer sk-admin"}
        assert httpx.get(f"{gw.base}/models", headers=admin).status_code == 200
        assert httpx.get(f"{gw.base}/models", headers=AUTH).status_code == 200


def test_no_keys_configured_means_open(config) -> None:  # type: ignore[no-untyped-def]
    with running_gateway(config, api_keys="", admin_keys="") as gw:
        response = httpx.get(f"{gw.base}/models")
        assert response.status_code == 200


def test_keys_file(config, tmp_path) -> None:  # type: ignore[no-untyped-def]
    keys = tmp_path / "keys"
    keys.write_text("# team keys\nsk-from-file\n")
    with running_gateway(config, api_keys="", api_keys_file=keys) as gw:
        ok = httpx.get(f"{gw.base}/models", headers={"Authorization": "Bearer sk-from-file"})
        assert ok.status_code == 200
        assert httpx.get(f"{gw.base}/models", headers=AUTH).status_code == 401


def test_malformed_json_is_400(gateway: RunningGateway) -> None:
    response = httpx.post(f"{gateway.base}/chat/completions", content=b"{not json", headers=AUTH)
    assert_openai_error(
        response, 400, error_type="invalid_request_error", contains="not valid JSON"
    )


def test_missing_fields_are_400(gateway: RunningGateway) -> None:
    response = httpx.post(f"{gateway.base}/chat/completions", json={"model": "chat"}, headers=AUTH)
    assert_openai_error(response, 400, param="messages")
    response = httpx.post(f"{gateway.base}/completions", json={"prompt": "x"}, headers=AUTH)
    assert_openai_error(response, 400, param="model")


def test_body_over_limit_is_413(config) -> None:  # type: ignore[no-untyped-def]
    with running_gateway(config, max_body_bytes=1000) as gw:
        big = {"model": "chat", "messages": [{"role": "user", "content": "x" * 2000}]}
        response = httpx.post(f"{gw.base}/chat/completions", json=big, headers=AUTH)
        assert_openai_error(response, 413, error_type="invalid_request_error")


def test_metrics_count_requests_and_tokens(gateway: RunningGateway) -> None:
    client(gateway).chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "hello"}]
    )
    assert httpx.get(f"{gateway.base}/nowhere", headers=AUTH).status_code == 404
    assert httpx.get(f"{gateway.base}/models").status_code == 401
    httpx.get(f"{gateway.url}/health")
    text = httpx.get(f"{gateway.url}/metrics").text
    assert 'p2_gateway_requests_total{route="/v1/chat/completions",status="200"} 1.0' in text
    assert 'p2_gateway_requests_total{route="unmatched",status="404"} 1.0' in text
    assert 'p2_gateway_requests_total{route="/v1/models",status="401"} 1.0' in text
    assert 'route="/health"' not in text and 'route="/metrics"' not in text  # probes, scrapes
    count = 'p2_gateway_request_duration_seconds_count{route="/v1/chat/completions"} 1.0'
    assert count in text
    assert 'p2_gateway_tokens_total{kind="completion",model="chat"} 8.0' in text


def test_keys_never_logged(gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    openai.OpenAI(base_url=gateway.base, api_key="sk-secret-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=gateway.base, api_key="sk-secret-wrong", max_retries=0).models.list()
    assert "sk-secret-wrong" not in caplog.text
    assert KEY not in caplog.text


def test_config_file_format_is_litellms() -> None:
    from pathlib import Path

    from gateway.config import load

    config = load(Path(__file__).parents[2] / "config" / "litellm.yaml")
    groups = config.groups()
    assert [(s.api_base, s.model) for s in groups["chat"]] == [
        ("http://127.0.0.1:8001/v1", "chat"),
        ("http://127.0.0.1:8004/v1", "code"),
    ]
    assert [s.api_base for s in groups["code"]] == [
        "http://127.0.0.1:8004/v1",
        "http://127.0.0.1:8001/v1",
    ]
    assert config.router.cooldown_time == 5
    assert make_config({"x": [("http://h:1/v1", "m")]}).deployments[0].api_key is None


def test_http_metrics_off(config) -> None:  # type: ignore[no-untyped-def]
    with running_gateway(config, http_metrics="off") as gw:
        client(gw).models.list()
        text = httpx.get(f"{gw.url}/metrics").text
    assert "p2_gateway_requests_total{" not in text
    assert "p2_gateway_backend_up{" in text


def test_embedding_service_down_is_a_clean_503(config) -> None:  # type: ignore[no-untyped-def]
    from p2.core.process import free_port

    with running_gateway(config, embedding_url=f"http://127.0.0.1:{free_port()}") as gw:
        response = httpx.post(
            f"{gw.base}/embeddings", headers=AUTH, json={"model": "embed", "input": "a"}
        )
    error = assert_openai_error(response, 503, code="no_backend_available", contains="'embeddings'")
    assert "\x00" not in error["message"]
    assert "127.0.0.1" not in error["message"] and "connect" not in error["message"]


def test_the_litellm_master_key_is_an_admin_key(
    mocks: tuple[ThreadedMock, ThreadedMock], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.config import parse
    from p2.core import litellm_config

    primary, _ = mocks
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-master")
    data = litellm_config.config([litellm_config.deployment("chat", primary.url, "chat")], {})
    data["general_settings"] = {"master_key": "os.environ/LITELLM_MASTER_KEY"}
    with running_gateway(parse(data)) as gw:
        master = {"Authorization": "Bearer sk-master"}
        models = httpx.get(f"{gw.base}/models", headers=master).json()
        ready = httpx.get(f"{gw.url}/health/ready", headers=master).json()
        user_ready = httpx.get(f"{gw.url}/health/ready", headers=AUTH).json()
    assert models["data"][0]["backends"][0]["api_base"] == primary.url
    assert ready["backends"]["chat"][0]["state"] == "up"
    assert "backends" not in user_ready


def test_ready_shows_status_only_without_an_admin_key(config, mocks) -> None:  # type: ignore[no-untyped-def]
    primary, secondary = mocks
    primary.stop()
    secondary.stop()
    with running_gateway(config) as gw:
        response = httpx.get(f"{gw.url}/health/ready", headers=AUTH)
    assert response.status_code == 503
    body = response.json()
    assert body["models"] == {"chat": "unavailable", "code": "unavailable"}
    assert "backends" not in body
    assert "127.0.0.1" not in response.text and "Errno" not in response.text


def test_p2_services_are_called_with_the_service_key(config: object) -> None:
    from tests.gateway.upstreams import ScriptedBackend, serve

    embedder = ScriptedBackend()
    server = serve(embedder)
    try:
        with running_gateway(
            config,  # type: ignore[arg-type]
            embedding_url=embedder.url,
            service_key="sk-p2-service",
        ) as gw:
            response = httpx.post(
                f"{gw.base}/embeddings", headers=AUTH, json={"model": "e", "input": "a"}
            )
    finally:
        server.stop()
    assert response.status_code == 200
    assert embedder.authorization == b"Bearer sk-p2-service"
