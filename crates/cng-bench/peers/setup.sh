#!/usr/bin/env bash
# Installs the peer gateways the load harness compares cng with, into an ignored dir
# (target/bench-peers/ by default): LiteLLM proxy from PyPI in a virtualenv, Portkey's
# gateway from npm. Idempotent; safe to re-run. Versions are pinned so a run can be
# reproduced (LiteLLM 1.107.0 was a compromised release: never use it).
#
#   crates/cng-bench/peers/setup.sh [DIR]
#
# Exits 0 even when a peer cannot be installed: it says why, and the harness reports
# that peer as unavailable with the same reason.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dir="${1:-$root/target/bench-peers}"
mkdir -p "$dir"
# 1.80.0: the newest we found whose dependencies (certifi>=2026.10.19 for 1.109) all resolve from the registry mirror here.
LITELLM_VERSION="${LITELLM_VERSION:-1.80.0}"
PORTKEY_VERSION="${PORTKEY_VERSION:-1.15.2}"

echo "== LiteLLM proxy ${LITELLM_VERSION} (PyPI) into $dir/litellm"
if [ -x "$dir/litellm/bin/litellm" ] && "$dir/litellm/bin/python" -c "import litellm" 2>/dev/null; then
  echo "   already installed"
else
  rm -f "$dir/litellm.unavailable"
  if python3 -m venv "$dir/litellm" >"$dir/litellm-install.log" 2>&1 &&
     "$dir/litellm/bin/pip" install --disable-pip-version-check -q "litellm[proxy]==${LITELLM_VERSION}" >>"$dir/litellm-install.log" 2>&1; then
    echo "   ok"
  else
    echo "pip install litellm[proxy]==${LITELLM_VERSION} failed: $(tail -n 3 "$dir/litellm-install.log" | tr '\n' ' ')" >"$dir/litellm.unavailable"
    echo "   FAILED (see $dir/litellm-install.log)"
  fi
fi

echo "== Portkey gateway ${PORTKEY_VERSION} (npm) into $dir/portkey"
if [ -f "$dir/portkey/node_modules/@portkey-ai/gateway/build/start-server.js" ]; then
  echo "   already installed"
else
  rm -f "$dir/portkey.unavailable"
  mkdir -p "$dir/portkey"
  if (cd "$dir/portkey" && [ -f package.json ] || echo '{"name":"cng-bench-peers","private":true}' >package.json) &&
     (cd "$dir/portkey" && npm install --no-audit --no-fund --loglevel=error "@portkey-ai/gateway@${PORTKEY_VERSION}") >"$dir/portkey-install.log" 2>&1; then
    echo "   ok"
  else
    echo "npm install @portkey-ai/gateway@${PORTKEY_VERSION} failed: $(tail -n 3 "$dir/portkey-install.log" | tr '\n' ' ')" >"$dir/portkey.unavailable"
    echo "   FAILED (see $dir/portkey-install.log)"
  fi
fi
