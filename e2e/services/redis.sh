#!/usr/bin/env bash
# A throw-away Redis server (Debian's redis-server) for the tests of server/src/redis/ and
# for running several server instances locally. Binds 127.0.0.1 only; no systemd, no root
# needed except for `install`.
#
# Usage: e2e/services/redis.sh <command>
#   install  apt-get install redis-server (and redis-tools) if missing
#   start    start the server in the background (does nothing when it already answers);
#            waits until it answers PING
#   stop     stop the server by its pid file (TERM, then KILL after a bound)
#   status   show whether it runs and answers (exit 0 only if healthy)
#   env      print `export REDIS_URL=...`:  eval "$(e2e/services/redis.sh env)"
#   reset    stop and wipe the state directory
#
# Settings (environment):
#   REDIS_STATE_DIR       pid file, log, append-only file (default <repo>/.tmp/redis)
#   REDIS_PORT            TCP port (default 6390, away from a system redis on 6379)
#   REDIS_PERSIST         "yes" turns appendonly on in the state dir (default "no": tests
#                         need no persistence)
#   REDIS_START_TIMEOUT   seconds `start` waits for PING (default 20)
#   REDIS_STOP_TIMEOUT    seconds `stop` waits before KILL (default 10)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

STATE_DIR="${REDIS_STATE_DIR:-$REPO_ROOT/.tmp/redis}"
PORT="${REDIS_PORT:-6390}"
PERSIST="${REDIS_PERSIST:-no}"
START_TIMEOUT="${REDIS_START_TIMEOUT:-20}"
STOP_TIMEOUT="${REDIS_STOP_TIMEOUT:-10}"
HOST=127.0.0.1

log() { printf 'redis: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

pid_file() { echo "$STATE_DIR/redis.pid"; }

# The pid from the pid file if that process is alive, else nothing.
live_pid() {
  local file pid
  file="$(pid_file)"
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  kill -0 "$pid" 2>/dev/null && echo "$pid"
  return 0
}

ping() { timeout 2 redis-cli -h "$HOST" -p "$PORT" ping 2>/dev/null | grep -qx PONG; }

cmd_install() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    log "already installed ($(redis-server --version | awk '{print $3}'))"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "install needs root (missing redis-server)"
    sudo=(sudo)
  fi
  log "installing redis-server"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends redis-server redis-tools
}

cmd_start() {
  command -v redis-server >/dev/null 2>&1 || die "redis-server not found; run: $0 install"
  mkdir -p "$STATE_DIR"
  STATE_DIR="$(cd "$STATE_DIR" && pwd)"
  if [[ -n "$(live_pid)" ]] && ping; then
    log "already running on $HOST:$PORT (pid $(live_pid))"
    return 0
  fi
  if ping; then
    die "something else answers on $HOST:$PORT; set REDIS_PORT"
  fi
  local persist=(--appendonly no --save '')
  [[ "$PERSIST" == yes ]] && persist=(--appendonly yes --appendfsync everysec --save '')
  redis-server --bind "$HOST" --port "$PORT" --protected-mode yes \
    --daemonize yes --pidfile "$(pid_file)" --logfile "$STATE_DIR/redis.log" \
    --dir "$STATE_DIR" "${persist[@]}" ||
    die "redis-server did not start; see $STATE_DIR/redis.log"
  local deadline=$((SECONDS + START_TIMEOUT))
  until ping; do
    ((SECONDS < deadline)) || die "no PING answer on $HOST:$PORT within ${START_TIMEOUT}s; see $STATE_DIR/redis.log"
    sleep 0.1
  done
  log "running on $HOST:$PORT (pid $(live_pid))"
}

cmd_stop() {
  local pid
  pid="$(live_pid)"
  if [[ -z "$pid" ]]; then
    log "not running"
    rm -f "$(pid_file)"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS >= deadline)); then
      log "pid $pid did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  rm -f "$(pid_file)"
  log "stopped (pid $pid)"
}

cmd_status() {
  local pid
  pid="$(live_pid)"
  if [[ -n "$pid" ]] && ping; then
    log "running on $HOST:$PORT (pid $pid), answers PING"
    return 0
  fi
  log "not healthy (pid: ${pid:-none}, port $PORT)"
  return 1
}

cmd_env() { echo "export REDIS_URL=redis://$HOST:$PORT"; }

cmd_reset() {
  cmd_stop
  rm -rf "$STATE_DIR"
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  *)
    echo "usage: $0 install|start|stop|status|env|reset" >&2
    exit 2
    ;;
esac
