"""Which key each RAG route needs, once keys are configured (``P2_API_KEYS``, ``P2_ADMIN_KEYS``).

Open: liveness, readiness (its details need an admin key, see ``rag.health``)
and metrics. Admin: everything that writes (index, delete a document, drop a
collection). User: everything else, i.e. retrieval, answers, ``/v1/models`` and
reading collections and documents.
"""

from __future__ import annotations

from p2.core.keys import PROBES, Access, AccessPolicy, rule

POLICY = AccessPolicy(
    (
        *PROBES,
        rule("/health/ready", Access.OPEN, "GET"),
        rule("/index", Access.ADMIN),
        rule("/v1/rag/collections/*", Access.ADMIN, "POST", "PUT", "PATCH", "DELETE"),
    ),
    default=Access.USER,
)
