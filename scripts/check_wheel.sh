#!/usr/bin/env bash
# The full check behind tests/test_packaging.py: build the wheel, `pip install 'wheel[cli,plot]'`
# into an empty venv (dependencies from the package registry), then from another directory
# run the simulate command and an experiment as a module of the installed package.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
python3 -m pip wheel --no-deps -q -w "$work/dist" "$root"
wheel="$(ls "$work"/dist/adaptive_router-*.whl)"
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q "${wheel}[cli,plot]"
mkdir "$work/elsewhere" && cd "$work/elsewhere"
"$work/venv/bin/adaptive-router" simulate chapelle_li --quick
"$work/venv/bin/python" -m adaptive_router.simulation.experiments.chapelle_li --quick --out out
test -s results/chapelle_li-quick.md && test -s out/chapelle_li-quick.png
echo "check_wheel: OK (installed from $(basename "$wheel"))"
