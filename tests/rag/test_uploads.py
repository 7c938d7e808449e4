"""Multipart uploads of .txt, .md, .html and .pdf files: the file name is the document id."""

from __future__ import annotations

from fastapi.testclient import TestClient

from rag.extract import extract
from testkit.openai_errors import assert_openai_error
from tests.rag.pdfmaker import make_pdf

HTML = (
    "<html><head><title>Lighthouses</title><style>p {color: red}</style>"
    "<script>var x = 'lantern';</script></head><body><h1>Lighthouses</h1>"
    "<p>A lighthouse warns ships of dangerous coasts with a bright rotating lamp.</p>"
    "<p>The Fresnel lens made lighthouse beams visible from over 20 miles away.</p>"
    "</body></html>"
)
PDF_LINES = [
    "Glaciers are rivers of ice that flow slowly downhill under their own weight.",
    "They carve U-shaped valleys and leave moraines of rock where they melt.",
]


def test_extracts_html_without_scripts_or_styles() -> None:
    text = extract("page.html", HTML.encode())
    assert "Fresnel lens" in text and "rotating lamp" in text
    assert "lantern" not in text and "color" not in text


def test_extracts_pdf_text() -> None:
    text = extract("ice.pdf", make_pdf(PDF_LINES))
    assert "U-shaped valleys" in text


def test_upload_files_of_every_supported_type(client: TestClient) -> None:
    files = [
        ("files", ("notes/ice.pdf", make_pdf(PDF_LINES), "application/pdf")),
        ("files", ("lights.html", HTML.encode(), "text/html")),
        ("files", ("readme.md", b"# Kites\n\nKites fly because wind lifts them.", "text/markdown")),
        (
            "files",
            ("plain.txt", "Caf\u00e9 au lait is coffee with hot milk.".encode(), "text/plain"),
        ),
    ]
    response = client.post("/v1/rag/collections/up/documents", files=files)
    assert response.status_code == 200, response.text
    ids = sorted(d["id"] for d in response.json()["documents"])
    assert ids == ["lights.html", "notes/ice.pdf", "plain.txt", "readme.md"]

    results = client.post(
        "/v1/rag/query", json={"collection": "up", "query": "What shape do glaciers carve?"}
    ).json()["results"]
    assert results[0]["document_id"] == "notes/ice.pdf"
    assert results[0]["metadata"]["content_type"] == "application/pdf"

    again = client.post("/v1/rag/collections/up/documents", files=files).json()
    assert again["unchanged"] == 4

    gone = client.delete("/v1/rag/collections/up/documents/notes/ice.pdf")
    assert gone.status_code == 200


def test_unsupported_or_broken_files_are_refused(client: TestClient) -> None:
    bad_type = client.post(
        "/v1/rag/collections/up/documents", files=[("files", ("x.exe", b"MZ", "x/y"))]
    )
    assert_openai_error(bad_type, 400, code="unreadable_file", contains="unsupported")
    broken = client.post(
        "/v1/rag/collections/up/documents", files=[("files", ("x.pdf", b"%PDF-1.4 junk", "x/y"))]
    )
    assert_openai_error(broken, 400, code="unreadable_file", contains="PDF")
    assert client.get("/v1/rag/collections").json()["data"] == []
