"""``python -m embedding [--host H] [--port P]``: the same as ``p2 serve embedding``."""

from embedding.commands import main

if __name__ == "__main__":
    main()
