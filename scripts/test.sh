#!/bin/sh
# Run the whole test suite on a fresh machine: creates .venv and installs what it needs.
# Extra arguments go to pytest, e.g. `sh scripts/test.sh -k merkle -x`.
. "$(dirname "$0")/_venv.sh"
python -m pytest "$@"
status=$?
# pytest exits 5 when it collected nothing: that is a broken suite, not a pass.
if [ "$status" -eq 5 ]; then
    echo "no tests were collected" >&2
    exit 1
fi
exit "$status"
