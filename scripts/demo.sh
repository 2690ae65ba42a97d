#!/bin/sh
# Run the local demo on a fresh machine: creates .venv and installs what it needs.
. "$(dirname "$0")/_venv.sh"
exec python scripts/demo.py "$@"
