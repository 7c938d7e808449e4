#!/usr/bin/env bash
# Check every P2 service's /health; prints ✅/❌ per service, exits 1 if any is unhealthy.
# Ports follow the services' own variables; HEALTH_HOST and HEALTH_TIMEOUT tune the checks.
# Services that are not part of this installation can be skipped: SKIP="rag embedding".
set -uo pipefail

HOST="${HEALTH_HOST:-127.0.0.1}"
TIMEOUT="${HEALTH_TIMEOUT:-5}"
SKIP=" ${SKIP:-} "

services=(
  "gateway:${GATEWAY_PORT:-8000}"
  "inference-chat:${CHAT_PORT:-8001}"
  "rag:${RAG_PORT:-8002}"
  "embedding:${EMBEDDING_PORT:-8003}"
  "inference-code:${CODE_PORT:-8004}"
)

failed=0
check() {
  local name="$1" url="$2" code
  code=$(curl -s -o /dev/null -m "$TIMEOUT" -w '%{http_code}' "$url")
  if [ "$code" = "200" ]; then
    printf '✅ %-15s %s\n' "$name" "$url"
  else
    [ "$code" = "000" ] && code="no answer"
    printf '❌ %-15s %s (%s)\n' "$name" "$url" "$code"
    failed=1
  fi
}

for entry in "${services[@]}"; do
  name="${entry%%:*}"
  port="${entry##*:}"
  case "$SKIP" in *" $name "*) continue ;; esac
  check "$name" "http://${HOST}:${port}/health"
done

# A Qdrant server, when RAG uses one (the embedded default has no endpoint of its own).
if [ -n "${QDRANT_URL:-}" ]; then
  check "qdrant" "${QDRANT_URL%/}/healthz"
fi

exit "$failed"
