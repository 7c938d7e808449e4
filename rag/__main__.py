"""``python -m rag [--host H] [--port P]``: the same as ``p2 serve rag``."""

from rag.commands import main

if __name__ == "__main__":
    main()
