"""Entry point of ``python -m lab6``."""

import sys

from lab6.cli import main

if __name__ == "__main__":
    sys.exit(main())
