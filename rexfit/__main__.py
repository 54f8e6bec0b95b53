"""Entry point for ``python -m rexfit``."""

import sys

from rexfit.cli import main

sys.exit(main())
