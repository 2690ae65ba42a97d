"""`python -m simulations run SCENARIO --nodes N --seed S [--json]`, `sweep`, `list`."""

import sys

from .runner import main

sys.exit(main())
