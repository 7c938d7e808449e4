"""``python -m rag [--host H] [--port P]``: the same as ``p2 serve rag``."""

from __future__ import annotations

import argparse

from rag.commands import serve

if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m rag", description="Serve the P2 RAG API.")
    parser.add_argument("--host", default=None, help="bind address (env RAG_HOST)")
    parser.add_argument("--port", type=int, default=None, help="port (env RAG_PORT, 8002)")
    args = parser.parse_args()
    serve(args.host, args.port)
