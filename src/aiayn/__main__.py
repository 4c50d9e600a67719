"""`python -m aiayn` (and `torchrun -m aiayn`) runs the CLI."""

import sys

from aiayn.cli import main

sys.exit(main())
