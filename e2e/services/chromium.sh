#!/usr/bin/env bash
# Debian's chromium for the real-browser tests (e2e/browser/, driven by playwright-core).
# Nothing runs in the background: the tests launch and close the browser themselves.
#
# Usage: e2e/services/chromium.sh <command>
#   install  apt-get install chromium if /usr/bin/chromium is missing (root, or sudo)
#   status   show whether it is installed and runs (exit 0 only if it does)
#
# Settings (environment):
#   CHROMIUM_BIN        the browser binary (default /usr/bin/chromium)
#   APT_LOCK_TIMEOUT    seconds apt waits for another apt/dpkg to finish (default 300)
set -euo pipefail

BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
LOCK_TIMEOUT="${APT_LOCK_TIMEOUT:-300}"

log() { printf 'chromium: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

version() { timeout 30 "$BIN" --headless --no-sandbox --version 2>/dev/null | head -n 1; }

cmd_install() {
  if [[ -x "$BIN" ]]; then
    log "already installed ($(version || echo "version unknown"))"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null ||
      die "$BIN is missing and installing it needs root: run 'apt-get install chromium' as root, or give this user sudo"
    sudo=(sudo -n)
  fi
  command -v apt-get >/dev/null 2>&1 || die "$BIN is missing and there is no apt-get: install Chromium yourself (CHROMIUM_BIN names another binary)"
  log "installing chromium (apt-get)"
  # Another apt (a parallel test run installing Redis or Ceph) may hold the lock: wait for it.
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$LOCK_TIMEOUT" install -y -q --no-install-recommends chromium
  [[ -x "$BIN" ]] || die "apt-get installed chromium but $BIN is not there"
  log "installed ($(version || echo "version unknown"))"
}

cmd_status() {
  [[ -x "$BIN" ]] || { log "not installed ($BIN missing)"; return 1; }
  local v
  v="$(version)" || { log "$BIN does not run"; return 1; }
  log "installed: $v"
}

case "${1:-}" in
  install) cmd_install ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 install|status" >&2
    exit 2
    ;;
esac
