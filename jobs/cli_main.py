"""``python -m jobs.cli_main``: the CLI without the console script (same as ``fraudwatch``)."""

from jobs.cli import main

if __name__ == "__main__":
    main()
