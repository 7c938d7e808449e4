"""``python -m jobs.worker [--host H] [--port P] [--name N]``: one job worker."""

from jobs.worker.commands import main

if __name__ == "__main__":
    main()
