#!/usr/bin/env bash
# Starts KakoClaw on its embedded defaults: SQLite under ~/.kakoclaw, the offline model,
# http://127.0.0.1:18880. Creates the virtual environment and builds the frontend when needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/pip install -q --disable-pip-version-check -e .
if [ -f frontend/package.json ] && { [ ! -f supervisor/static/index.html ] || [ -n "$(find frontend/src frontend/index.html -newer supervisor/static/index.html 2>/dev/null | head -1)" ]; }; then
  (cd frontend && { [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error; } && npm run build)
fi
exec .venv/bin/kakoclaw serve "$@"
