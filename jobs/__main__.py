"""``python -m jobs [--host H] [--port P]``: the job API."""

from jobs.commands import main

if __name__ == "__main__":
    main()
