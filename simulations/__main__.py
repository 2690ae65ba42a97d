"""`python -m simulations run SCENARIO --nodes N --seed S [--json]`, `sweep`, `table`, `list`.

Replays must not depend on Python's per-process hash salt, even for a core that iterates
a set of bytes or strings somewhere: unless PYTHONHASHSEED is set already, the command
re-executes itself once with PYTHONHASHSEED=0. Setting it explicitly (to any value)
keeps it, which is how a test proves the harness itself does not depend on it.
"""

import os
import sys

if "PYTHONHASHSEED" not in os.environ:
    os.environ["PYTHONHASHSEED"] = "0"
    os.execv(sys.executable, [sys.executable, "-m", "simulations", *sys.argv[1:]])

from .runner import main  # after the re-exec, so that it is imported once

sys.exit(main())
