"""``python -m gateway [--config PATH] [--host H] [--port N]``: the same as ``p2 serve gateway``."""

from gateway.commands import main

if __name__ == "__main__":
    main()
