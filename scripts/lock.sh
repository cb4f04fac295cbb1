#!/usr/bin/env bash
# Make constraints.txt: every package version of a fresh install of gistlab[test], resolved in a
# throw-away virtual environment, so the README's install and .ci/run get exactly the tested set.
#
#   bash scripts/lock.sh                         # re-resolve, keeping the locked versions of the
#                                                # libraries the results depend on (LOCKED below)
#   bash scripts/lock.sh sentence-transformers==6.3.0 transformers==5.25.0   # a deliberate upgrade
#
# torch is left out of the lock: the README installs it first (`pip install torch==2.13.0`, the CPU
# build here; a GPU user installs a CUDA build of the same version), and the lock must not fight that.
# After an upgrade: run `python -m pytest -q` and scripts/check_upgrades.sh, and commit the lock with
# the docs it changes (docs/UPGRADES.md, RESULTS.md's version line).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${TORCH:-torch==2.13.0}
# The versions RESULTS.md and the suite were produced with; an argument overrides its package's line.
LOCKED=(sentence-transformers==6.2.0 transformers==5.24.0 mteb==2.26.24)
pins=()
for pin in "${LOCKED[@]}"; do
  name=${pin%%==*}
  for arg in "$@"; do [[ ${arg%%==*} == "$name" ]] && pin=""; done
  [[ -n $pin ]] && pins+=("$pin")
done
pins+=("$@")
env_dir=$(mktemp -d)
trap 'rm -rf "$env_dir"' EXIT
python -m venv "$env_dir"
"$env_dir/bin/python" -m pip install -q "$TORCH"
"$env_dir/bin/python" -m pip install -q -e ".[test]" "${pins[@]}"
{
  echo "# The tested set: made by 'bash scripts/lock.sh${*:+ $*}' on $(date -u +%Y-%m-%d), Python $("$env_dir/bin/python" -c 'import platform; print(platform.python_version())')."
  echo "# Used by the README's install command and .ci/run (pip install -c constraints.txt ...). torch is"
  echo "# installed before it (pip install torch==2.13.0) and is not listed. Upgrade deliberately: README, Install."
  "$env_dir/bin/python" -m pip freeze --exclude-editable | grep -viE '^(torch|nvidia-|triton)([=_-]|$)' | sort -f
} > constraints.txt
echo "wrote constraints.txt ($(grep -vc '^#' constraints.txt) packages)"
