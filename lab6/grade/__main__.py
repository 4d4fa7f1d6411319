"""``python -m lab6.grade grade|check ...``: the grading commands without the main command line."""

import sys

from lab6.grade.commands import main

sys.exit(main())
