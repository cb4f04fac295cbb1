#!/usr/bin/env bash
# What the newest releases change: a throw-away environment with the newest versions pyproject.toml
# allows (or the pins given), the library-parity figures and tests, and the whole suite, written up
# beside the locked set (constraints.txt, the interpreter that runs this) in docs/UPGRADES.md. It tests
# the committed tree (HEAD), copied aside.
#
#   bash scripts/check_upgrades.sh                              # newest of everything
#   bash scripts/check_upgrades.sh sentence-transformers==6.3.0 # one release on purpose
#   ENV_DIR=/tmp/newest bash scripts/check_upgrades.sh          # keep (or reuse) the environment
#   SUITE=0 bash scripts/check_upgrades.sh                      # parity only (~5 min instead of ~20)
#
# It changes nothing but the report: upgrading is scripts/lock.sh's job (README, Install).
set -euo pipefail
cd "$(dirname "$0")/.."
report=$PWD/${REPORT:-docs/UPGRADES.md}
lock=$PWD/constraints.txt
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The committed tree (HEAD), so edits made while it runs cannot mix into what it tests.
mkdir "$work/tree"
git archive HEAD | tar -x -C "$work/tree"
env_dir=${ENV_DIR:-$work/env}
if [[ ! -x $env_dir/bin/python ]]; then
  python -m venv "$env_dir"
  "$env_dir/bin/python" -m pip install -q "${TORCH:-torch==2.13.0}"
fi
cd "$work/tree"
"$env_dir/bin/python" -m pip install -q --upgrade -e ".[test]" "$@"
"$env_dir/bin/python" -m pip freeze --exclude-editable > "$work/newest.txt"

echo "parity figures: locked set, then newest" >&2
python scripts/parity_figures.py --json "$work/parity-locked.json" > /dev/null 2> "$work/parity-locked.log"
"$env_dir/bin/python" scripts/parity_figures.py --json "$work/parity-newest.json" > /dev/null 2> "$work/parity-newest.log"

# Each run gets its own workspace, so nothing the locked set cached is reused.
run_tests() {  # name, pytest arguments...
  local name=$1; shift
  echo "tests ($name) with the newest set" >&2
  GISTLAB_HOME="$work/home-$name" "$env_dir/bin/python" -m pytest -q -p no:cacheprovider \
    --junitxml "$work/$name.xml" "$@" > "$work/$name.log" 2>&1 || true
}
run_tests parity tests/test_loss.py tests/test_cached_loss.py tests/test_train.py -n 0
if [[ ${SUITE:-1} != 0 ]]; then run_tests suite; fi

python scripts/upgrade_report.py --work "$work" --lock "$lock" --args "$*" > "$report"
echo "wrote $report" >&2
