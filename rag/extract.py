"""Text out of uploaded files: .txt, .md, .html/.htm and .pdf (pypdf, pure Python).

These functions trust nothing they are given but bound nothing by time: PDF and
HTML are parsed in a worker process that is killed when it overruns
(``rag.extractor``). Messages of :class:`ExtractionError` are shown to the client;
a parser's own error text is kept in ``detail`` for the log.
"""

from __future__ import annotations

import io
import logging
from html.parser import HTMLParser
from pathlib import PurePosixPath

from pypdf import PdfReader
from pypdf.errors import PyPdfError

from rag.errors import ExtractionError, TooManyPages

log = logging.getLogger("p2.rag.extract")

SUPPORTED = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
_BLOCKS = {
    "p",
    "div",
    "br",
    "li",
    "ul",
    "ol",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "tr",
    "table",
    "section",
    "article",
    "header",
    "footer",
    "pre",
    "blockquote",
    "title",
}
_SKIP = {"script", "style", "noscript", "template", "head"}


class _HtmlText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        elif tag in _SKIP:
            self._skip += 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag in _SKIP and self._skip:
            self._skip -= 1
        if tag in _BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def _tidy(text: str) -> str:
    lines = [" ".join(line.split()) for line in text.splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def html_text(raw: str) -> str:
    parser = _HtmlText()
    parser.feed(raw)
    parser.close()
    title = " ".join("".join(parser.title).split())
    body = _tidy("".join(parser.parts))
    return f"{title}\n\n{body}" if title and not body.startswith(title) else body


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM); Latin-1 as the last resort, which never fails."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def pdf_text(data: bytes, max_pages: int) -> str:
    """The text of every page; :class:`TooManyPages` before any page is read if there are
    more than ``max_pages``."""
    try:
        reader = PdfReader(io.BytesIO(data))
        count = len(reader.pages)
        if count > max_pages:
            raise TooManyPages(
                f"the PDF has {count} pages; at most {max_pages} are accepted (RAG_MAX_PDF_PAGES)"
            )
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, RecursionError) as exc:
        raise ExtractionError("it is not a readable PDF", detail=str(exc)) from exc
    return "\n\n".join(p.strip() for p in pages if p.strip())


def is_supported(filename: str) -> bool:
    return PurePosixPath(filename).suffix.lower() in SUPPORTED


def needs_worker(filename: str) -> bool:
    """PDF and HTML parsing can be made arbitrarily slow by their input."""
    return PurePosixPath(filename).suffix.lower() in (".pdf", ".html", ".htm")


def extract(filename: str, data: bytes, max_pages: int = 2000) -> str:
    """The text of one file, by its extension; raises :class:`ExtractionError` if unsupported."""
    suffix = PurePosixPath(filename).suffix.lower()
    if suffix == ".pdf":
        return pdf_text(data, max_pages)
    if suffix in (".html", ".htm"):
        return html_text(decode(data))
    if suffix in (".txt", ".md", ".markdown"):
        return decode(data)
    raise ExtractionError(
        f"unsupported file type '{suffix or filename}': use one of {', '.join(SUPPORTED)}"
    )
