"""Keys and scopes: what a caller with no key, a user key or an admin key may call."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from p2.core.auth import RequireKey, caller_of
from p2.core.keys import PROBES, Access, AccessPolicy, Keyring, KeySettings, rule
from testkit.openai_errors import assert_openai_error

POLICY = AccessPolicy(
    (*PROBES, rule("/admin/*", Access.ADMIN), rule("/v1/things", Access.ADMIN, "DELETE"))
)


async def who(request: Request) -> JSONResponse:
    caller = caller_of(request.scope)
    return JSONResponse({"access": caller.access.name if caller else None})


def client(keyring: Keyring) -> TestClient:
    routes = [
        Route("/health", who),
        Route("/metrics", who),
        Route("/v1/things", who, methods=["GET", "DELETE"]),
        Route("/admin/drop", who, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    return TestClient(RequireKey(app, keyring=keyring, policy=POLICY))


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


KEYS = Keyring(users=["sk-user"], admins=["sk-admin"])


def test_no_key_and_a_wrong_key_are_401() -> None:
    c = client(KEYS)
    missing = assert_openai_error(c.get("/v1/things"), 401, code="invalid_api_key")
    assert "didn't provide an API key" in missing["message"]
    assert_openai_error(c.get("/v1/things", headers=bearer("sk-nope")), 401, contains="Incorrect")
    assert c.get("/v1/things", headers={"Authorization": "Basic sk-user"}).status_code == 401


def test_probes_stay_open() -> None:
    c = client(KEYS)
    assert c.get("/health").status_code == 200
    assert c.get("/metrics").status_code == 200


def test_a_user_key_may_not_use_admin_routes() -> None:
    c = client(KEYS)
    assert c.get("/v1/things", headers=bearer("sk-user")).json() == {"access": "USER"}
    assert_openai_error(
        c.delete("/v1/things", headers=bearer("sk-user")),
        403,
        code="insufficient_scope",
        error_type="permission_error",
    )
    assert_openai_error(c.post("/admin/drop", headers=bearer("sk-user")), 403)


def test_an_admin_key_may_do_everything() -> None:
    c = client(KEYS)
    assert c.post("/admin/drop", headers=bearer("sk-admin")).json() == {"access": "ADMIN"}
    assert c.get("/v1/things", headers=bearer("sk-admin")).json() == {"access": "ADMIN"}


def test_without_keys_everything_is_open() -> None:
    c = client(Keyring())
    assert c.post("/admin/drop").json() == {"access": None}


def test_keys_come_from_env_and_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    users, admins = tmp_path / "users", tmp_path / "admins"
    users.write_text("# team\nsk-file-user\n\n")
    admins.write_text("sk-file-admin\n")
    monkeypatch.setenv("P2_API_KEYS", "sk-a, sk-b,")
    monkeypatch.setenv("P2_API_KEYS_FILE", str(users))
    monkeypatch.setenv("P2_ADMIN_KEYS_FILE", str(admins))
    keyring = KeySettings().keyring(extra_admin_keys=["sk-master"])
    scopes = {
        key: (keyring.caller(key.encode()) or pytest.fail(key)).access
        for key in ("sk-a", "sk-b", "sk-file-user", "sk-file-admin", "sk-master")
    }
    assert scopes == {
        "sk-a": Access.USER,
        "sk-b": Access.USER,
        "sk-file-user": Access.USER,
        "sk-file-admin": Access.ADMIN,
        "sk-master": Access.ADMIN,
    }
    assert keyring.caller(b"sk-") is None and keyring.caller(b"") is None


def test_a_key_listed_as_both_is_admin() -> None:
    keyring = Keyring(users=["sk-x"], admins=["sk-x"])
    caller = keyring.caller(b"sk-x")
    assert caller is not None and caller.access is Access.ADMIN
    assert len(caller.key_id) == 16 and "sk-x" not in caller.key_id


def test_keys_never_show_in_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P2_API_KEYS", "sk-secret-user")
    monkeypatch.setenv("P2_ADMIN_KEYS", "sk-secret-admin")
    assert "sk-secret" not in repr(KeySettings())
