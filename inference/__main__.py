"""``python -m inference --role chat``: the same as ``p2 serve inference``."""

from inference.commands import main

if __name__ == "__main__":
    main()
