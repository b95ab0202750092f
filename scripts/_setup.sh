# Sourced by scripts/run and scripts/test: make .venv and install the pinned requirements.
# Usage: . scripts/_setup.sh [runtime|dev]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
REQS="requirements.txt"
[ "${1:-runtime}" = "dev" ] && REQS="requirements-dev.txt"
if [ ! -x .venv/bin/python ]; then
  echo "==> Creating .venv"
  python3 -m venv .venv
fi
STAMP=".venv/.installed-$(cat requirements.txt "$REQS" constraints.txt 2>/dev/null | sha256sum | cut -c1-16)-${1:-runtime}"
if [ ! -f "$STAMP" ]; then
  echo "==> Installing $REQS"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$REQS" -c constraints.txt
  touch "$STAMP"
fi
export PATH="$ROOT/.venv/bin:$PATH"
