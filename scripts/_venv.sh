# Sourced by scripts/test.sh and scripts/demo.sh: create .venv beside the checkout and
# install gossipnode with its test extra, once per change of pyproject.toml.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
python=${PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.installed-$(cksum < "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ]; then
    echo "installing gossipnode and its test dependencies into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$root[test]"
    rm -f "$venv"/.installed-*
    touch "$stamp"
fi
export PATH="$venv/bin:$PATH"
cd "$root"
