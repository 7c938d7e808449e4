"""``p2 index``: a folder goes in; a re-run or a resumed run redoes no finished document."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2.core.settings import CoreSettings
from rag import indexer_cli
from rag.app import create_app
from rag.settings import RagSettings
from testkit.threadserver import ThreadServer
from tests.rag.corpus import DOCS
from tests.rag.pdfmaker import make_pdf


@pytest.fixture
def rag_url(make_settings: Callable[..., RagSettings], tmp_path: Path) -> Iterator[str]:
    server = ThreadServer(create_app(make_settings(), CoreSettings(home=tmp_path))).start()
    yield server.url
    server.stop()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    for name, text in DOCS.items():
        (root / name).write_text(text)
    (root / "sub" / "ice.pdf").write_bytes(make_pdf(["Glaciers carve U-shaped valleys."]))
    (root / "sub" / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    (root / "image.png").write_bytes(b"\x89PNG")
    (root / ".hidden.txt").write_text("not indexed")
    return root


def _run(folder: Path, url: str, tmp_path: Path, **kw: Any) -> indexer_cli.IndexReport:
    return indexer_cli.index(folder, "kb", url, state_dir=tmp_path / "state", progress=False, **kw)


def _documents(url: str) -> dict[str, int]:
    data = httpx.get(f"{url}/v1/rag/collections/kb/documents").json()["data"]
    return {d["id"]: d["chunks"] for d in data}


def test_indexes_a_folder_and_a_rerun_uploads_nothing(
    folder: Path, rag_url: str, tmp_path: Path
) -> None:
    report = _run(folder, rag_url, tmp_path, batch_files=3)
    assert report.files == len(DOCS) + 2
    assert report.indexed == len(DOCS) + 1
    assert list(report.failed) == ["sub/broken.pdf"]
    assert report.unsupported == ["image.png"]
    assert set(_documents(rag_url)) == {*DOCS, "sub/ice.pdf"}

    again = _run(folder, rag_url, tmp_path)
    assert again.skipped == len(DOCS) + 1 and again.indexed == 0 and again.unchanged == 0

    (folder / "tides.txt").write_text("Tides are caused by the Moon. " * 3)
    changed = _run(folder, rag_url, tmp_path)
    assert changed.indexed == 1 and changed.skipped == len(DOCS)
    assert _documents(rag_url)["tides.txt"] == 1


def test_an_interrupted_run_resumes_where_it_stopped(
    folder: Path, rag_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_send = indexer_cli._send
    sent: list[str] = []

    def flaky_send(*args: Any) -> None:
        if len(sent) == 2:
            raise KeyboardInterrupt
        sent.extend(doc_id for doc_id, _ in args[2])
        real_send(*args)

    monkeypatch.setattr(indexer_cli, "_send", flaky_send)
    with pytest.raises(KeyboardInterrupt):
        _run(folder, rag_url, tmp_path, batch_files=1)
    monkeypatch.setattr(indexer_cli, "_send", real_send)
    assert set(_documents(rag_url)) == set(sent)

    resumed = _run(folder, rag_url, tmp_path, batch_files=1)
    assert resumed.skipped == 2
    assert resumed.indexed == len(DOCS) - 1  # the rest, minus the broken PDF
    assert set(_documents(rag_url)) == {*DOCS, "sub/ice.pdf"}


def test_a_deleted_collection_is_indexed_again(folder: Path, rag_url: str, tmp_path: Path) -> None:
    _run(folder, rag_url, tmp_path)
    assert httpx.delete(f"{rag_url}/v1/rag/collections/kb").status_code == 200
    report = _run(folder, rag_url, tmp_path)
    assert report.indexed == len(DOCS) + 1 and report.skipped == 0


def test_the_state_file_lives_under_p2_home_by_default(
    folder: Path, rag_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("P2_HOME", str(tmp_path / "home"))
    first = indexer_cli.index(folder, "kb", rag_url, progress=False)
    assert first.indexed == len(DOCS) + 1
    assert [p.suffix for p in (tmp_path / "home" / "index-state").iterdir()] == [".json"]
    again = indexer_cli.index(folder, "kb", rag_url, progress=False)
    assert again.skipped == len(DOCS) + 1 and again.indexed == 0


def test_unreachable_service_stops_with_a_resume_hint(folder: Path, tmp_path: Path) -> None:
    from p2.core.process import free_port

    with pytest.raises(indexer_cli.IndexingFailed, match="re-run"):
        _run(folder, f"http://127.0.0.1:{free_port()}", tmp_path, timeout=2, retries=1)
