#!/usr/bin/env bash
# Installs everything the tests need (system packages, Python venv, npm packages,
# Chromium), builds the frontend, and runs every suite. Fails on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v setpriv >/dev/null || need_apt+=(util-linux)
if ((${#need_apt[@]})); then
  if [ "$(id -u)" = 0 ]; then
    echo "== apt-get install ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "missing system packages: ${need_apt[*]} (run as root or install them)" >&2
    exit 1
  fi
fi

echo "== Python environment (.venv)"
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e '.[test]'

if [ -f frontend/package.json ]; then
  echo "== frontend: npm ci, unit tests, build"
  (cd frontend && npm ci --no-audit --no-fund --loglevel=error && npm test && npm run build)
fi

echo "== pytest"
set +e
.venv/bin/python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ $rc -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
[ $rc -eq 0 ] || exit $rc

if [ "${KAKOCLAW_SKIP_BENCH:-}" != 1 ] && [ -f tests/bench/__main__.py ]; then
  echo "== benchmarks (quick mode; figures only, timing never fails the run)"
  .venv/bin/python -m tests.bench --quick --json bench-results/quick.json
fi
