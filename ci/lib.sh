# Shared helpers for the ci/ scripts. Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Everything downloaded or generated outside the repository lives here, so it survives clean
# clones on the same machine.
COCOON_CACHE=${COCOON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cocoon-worker}
VENV=$COCOON_CACHE/venv
export COCOON_CACHE

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
