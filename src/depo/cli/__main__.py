"""`python -m depo.cli ...` is `depo ...`."""

import sys

from depo.cli import main

sys.exit(main())
