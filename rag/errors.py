"""Domain exceptions of the RAG service.

Adapters translate library errors (qdrant-edge, qdrant-client, httpx) into
these, so the retry policy and the HTTP layer decide on meaning, not on
which library raised.
"""

from __future__ import annotations


class RagError(Exception):
    """Base of every error the RAG service raises on purpose."""


class TransientError(RagError):
    """A failure worth retrying: connection refused or reset, timeout, 5xx, 429."""


class StoreError(RagError):
    """The vector store refused or failed an operation."""


class StoreUnavailable(StoreError, TransientError):
    """The vector store could not be reached or answered 5xx/429."""


class StoreRejected(StoreError):
    """The vector store answered 4xx: retrying would not help."""


class CollectionNotFound(StoreError):
    """The named collection does not exist."""


class NameTaken(StoreRejected):
    """The store holds something that is not a collection under the name asked for."""


class EmbeddingError(RagError):
    """The embedding service refused the request or answered nonsense."""


class EmbeddingUnavailable(EmbeddingError, TransientError):
    """The embedding service could not be reached or answered 5xx/429."""


class ExtractionError(RagError):
    """A document's bytes could not be turned into text (bad PDF, bad encoding).

    The message is for the client; ``detail`` (a parser's own words) only for the log.
    """

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class ExtractionTimeout(ExtractionError):
    """Extracting a file's text took longer than ``RAG_EXTRACT_TIMEOUT``; its worker was killed."""


class TooManyPages(ExtractionError):
    """A PDF has more pages than ``RAG_MAX_PDF_PAGES``."""
