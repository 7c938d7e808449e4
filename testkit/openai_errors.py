"""The one check that a response is an OpenAI-format error, used by every service's tests."""

from __future__ import annotations

from typing import Any, Protocol


class _Response(Protocol):
    @property
    def status_code(self) -> int: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def assert_openai_error(
    response: _Response,
    status: int,
    *,
    code: str | None = None,
    param: str | None = None,
    error_type: str | None = None,
    contains: str | None = None,
) -> dict[str, Any]:
    """``response`` is ``status`` with exactly ``{"error": {message, type, param, code}}``.

    Returns the error object; the keyword arguments, when given, must match.
    """
    assert response.status_code == status, f"{response.status_code}: {response.text[:500]}"
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert "Traceback" not in error["message"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    if error_type is not None:
        assert error["type"] == error_type, error
    if contains is not None:
        assert contains in error["message"], error
    return error
