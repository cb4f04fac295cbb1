"""``python -m core.cli``: what background jobs run (no reliance on PATH)."""

import sys

from core.cli import main

sys.exit(main())
