"""Other providers' wire formats for the mock backend (``testkit.mock_openai``).

The gateway talks to cloud and local providers that are not plain OpenAI
servers; these pieces make the mock speak as they do, so tests run against
real sockets without the internet:

* ``azure``: ``/openai/deployments/<name>/chat/completions?api-version=...``,
  the key in an ``api-key`` header, no ``/health``;
* ``ollama``: OpenAI's API under ``/v1``, ``/api/tags``, ``/api/chat``, ``/``
  says "Ollama is running", no ``/health``;
* ``cloud``: OpenAI's API with a bearer key and no ``/health`` (OpenAI, Groq, ...);
* ``anthropic``: Anthropic's native ``POST /v1/messages`` (``x-api-key``), plain
  and as Anthropic's server-sent events;
* TLS: ``tls_files`` makes a throwaway CA and a server certificate for
  127.0.0.1 and localhost (``cryptography``), for ``ssl`` contexts on both sides.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

FLAVOURS = ("openai", "cloud", "azure", "ollama", "anthropic")


def split_azure(path: bytes) -> tuple[bytes, str | None]:
    """``/openai/deployments/<d>/chat/completions`` -> (``/v1/chat/completions``, ``d``)."""
    prefix = b"/openai/deployments/"
    if not path.startswith(prefix):
        return path, None
    name, _, rest = path[len(prefix) :].partition(b"/")
    return b"/v1/" + rest, name.decode()


def key_of(headers: dict[bytes, bytes], flavour: str) -> str | None:
    """The API key a request carries, where ``flavour`` expects it."""
    if flavour == "azure":
        value = headers.get(b"api-key")
        return value.decode() if value else None
    if flavour == "anthropic":
        value = headers.get(b"x-api-key")
        return value.decode() if value else None
    auth = headers.get(b"authorization", b"")
    return auth[7:].decode() if auth[:7].lower() == b"bearer " else None


def ollama_tags(model: str) -> bytes:
    return orjson.dumps({"models": [{"name": model, "model": model, "size": 1}]})


def ollama_chat(model: str, text: str) -> bytes:
    return orjson.dumps(
        {
            "model": model,
            "created_at": "2026-01-01T00:00:00Z",
            "message": {"role": "assistant", "content": text},
            "done": True,
            "done_reason": "stop",
            "prompt_eval_count": 5,
            "eval_count": len(text.split()),
        }
    )


def anthropic_error(status: int, message: str) -> bytes:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        429: "rate_limit_error",
        529: "overloaded_error",
    }.get(status, "api_error")
    return orjson.dumps({"type": "error", "error": {"type": kind, "message": message}})


def anthropic_message(model: str, tokens: list[str]) -> bytes:
    return orjson.dumps(
        {
            "id": "msg_mock",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(tokens)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 5, "output_tokens": len(tokens)},
        }
    )


def anthropic_event(name: str, payload: dict[str, Any]) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(payload) + b"\n\n"


def anthropic_start(model: str) -> bytes:
    message: dict[str, Any] = {
        "id": "msg_mock",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 5, "output_tokens": 0},
    }
    return anthropic_event(
        "message_start", {"type": "message_start", "message": message}
    ) + anthropic_event(
        "content_block_start",
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    )


def anthropic_delta(token: str) -> bytes:
    return anthropic_event(
        "content_block_delta",
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}},
    )


def anthropic_end(tokens: int) -> bytes:
    return (
        anthropic_event("content_block_stop", {"type": "content_block_stop", "index": 0})
        + anthropic_event(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": tokens},
            },
        )
        + anthropic_event("message_stop", {"type": "message_stop"})
    )


def anthropic_prompt(body: dict[str, Any]) -> dict[str, Any]:
    """Anthropic's request as an OpenAI-style one, for the mock's token logic."""
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    flat = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) for part in content if isinstance(part, dict)
            )
        flat.append({"role": message.get("role"), "content": content})
    return {"messages": flat, "max_tokens": body.get("max_tokens")}


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """What a client needs to trust the server: verification against this CA only."""
        return ssl.create_default_context(cafile=str(self.ca))


def tls_files(directory: Path, days: int = 2) -> TlsFiles:
    """Write a CA and a server certificate signed by it into ``directory``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "P2 test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files


def created() -> int:
    return int(time.time())
