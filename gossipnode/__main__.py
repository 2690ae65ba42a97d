"""`python -m gossipnode`: the same as the `gossipnode` command."""

import sys

from gossipnode.cli import main

sys.exit(main())
