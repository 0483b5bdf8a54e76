#!/usr/bin/env bash
# A throw-away, single-node Ceph cluster (one mon, one bluestore OSD on a
# sparse file, one RADOS Gateway) that gives the e2e tests a real
# S3-compatible endpoint on http://127.0.0.1:7480. Debian 12 packages
# (Ceph 16 "Pacific"); no Docker, no systemd, no root needed except for
# `install`.
#
# Usage: e2e/services/ceph-rgw.sh <command>
#   install  apt-get install the Ceph daemons (and curl) if any is missing
#   start    bootstrap (first time) or restart the cluster; waits until S3
#            answers; does nothing when it is already healthy
#   stop     stop the daemons (TERM, then KILL after a bound); keeps the state
#   status   show the daemons and whether S3 answers (exit 0 only if healthy)
#   env      print `export S3_...=` lines:  eval "$(e2e/services/ceph-rgw.sh env)"
#   reset    stop and wipe the state directory (the next start is a cold one)
#   logs     print the tail of every log file
#
# Settings (environment):
#   CEPH_RGW_STATE_DIR      state, logs, pid files (default <repo>/.tmp/ceph);
#                           must support O_DIRECT: ext4/xfs/btrfs, not tmpfs
#   CEPH_RGW_PORT           S3 port (default 7480)
#   CEPH_RGW_MON_PORT       monitor port, msgr2 (default 3300); fixed at bootstrap
#   CEPH_RGW_START_TIMEOUT  seconds `start` waits for S3 (default 120)
#   CEPH_RGW_STOP_TIMEOUT   seconds `stop` waits per daemon before KILL (default 20)
#   CEPH_RGW_OSD_SIZE       bytes of the sparse OSD block file (default 20 GiB)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"

STATE_DIR="${CEPH_RGW_STATE_DIR:-$REPO_ROOT/.tmp/ceph}"
RGW_PORT="${CEPH_RGW_PORT:-7480}"
MON_PORT="${CEPH_RGW_MON_PORT:-3300}"
START_TIMEOUT="${CEPH_RGW_START_TIMEOUT:-120}"
STOP_TIMEOUT="${CEPH_RGW_STOP_TIMEOUT:-20}"
OSD_SIZE="${CEPH_RGW_OSD_SIZE:-21474836480}"
HOST=127.0.0.1

S3_REGION=us-east-1
S3_ACCESS_KEY_ID=tus-test-access-key
S3_SECRET_ACCESS_KEY=tus-test-secret-key-0123456789
S3_USER=tus-test

MON_ID=a
OSD_ID=0
RGW_NAME=client.rgw.$MON_ID

CONF="$STATE_DIR/ceph.conf"
RUN_DIR="$STATE_DIR/run"
LOG_DIR="$STATE_DIR/log"
MARKER="$STATE_DIR/.ceph-rgw-state"
# A bound on every single Ceph CLI call (they otherwise retry forever when the mon is down).
CLI_TIMEOUT=30

now() { echo "${EPOCHREALTIME/,/.}"; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
T0="$(now)"

log() { printf 'ceph-rgw [%5ss]: %s\n' "$(elapsed "$T0")" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------
# install

cmd_install() {
  local missing=()
  command -v ceph-mon >/dev/null 2>&1 || missing+=(ceph-mon)
  command -v ceph-osd >/dev/null 2>&1 || missing+=(ceph-osd)
  command -v radosgw >/dev/null 2>&1 || missing+=(radosgw)
  # ceph (the CLI), monmaptool and ceph-authtool come with ceph-common, a dependency of the above.
  command -v ceph >/dev/null 2>&1 || missing+=(ceph-common)
  command -v monmaptool >/dev/null 2>&1 || missing+=(ceph-common)
  command -v curl >/dev/null 2>&1 || missing+=(curl)
  command -v flock >/dev/null 2>&1 || missing+=(util-linux)
  if ((${#missing[@]} == 0)); then
    log "already installed ($(ceph --version 2>/dev/null | awk '{print $3, $5}'))"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "install needs root (missing: ${missing[*]})"
    sudo=(sudo)
  fi
  log "installing: ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    ceph-mon ceph-osd radosgw ceph-common curl util-linux
  # The packages ship systemd units; nothing here uses them (daemons run from the state dir).
}

require_installed() {
  local b
  for b in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool ceph-authtool curl flock; do
    command -v "$b" >/dev/null 2>&1 || die "$b not found; run: $0 install"
  done
}

# ---------------------------------------------------------------------------
# state directory, config, locking

check_state_fs() {
  local fstype
  fstype="$(stat -f -c %T "$STATE_DIR")"
  case "$fstype" in
    tmpfs | ramfs) die "$STATE_DIR is on $fstype; bluestore needs O_DIRECT (use ext4/xfs, e.g. CEPH_RGW_STATE_DIR=/var/tmp/ceph)" ;;
  esac
  local probe="$STATE_DIR/.odirect-probe"
  if ! dd if=/dev/zero of="$probe" bs=4096 count=1 oflag=direct status=none 2>/dev/null; then
    rm -f "$probe"
    die "$STATE_DIR ($fstype) does not support O_DIRECT; set CEPH_RGW_STATE_DIR to an ext4/xfs directory"
  fi
  rm -f "$probe"
}

# Makes STATE_DIR absolute (the daemons chdir to /).
resolve_state_dir() {
  STATE_DIR="$(cd "$STATE_DIR" && pwd)"
  CONF="$STATE_DIR/ceph.conf"
  RUN_DIR="$STATE_DIR/run"
  LOG_DIR="$STATE_DIR/log"
  MARKER="$STATE_DIR/.ceph-rgw-state"
}

prepare_state_dir() {
  mkdir -p "$STATE_DIR"
  resolve_state_dir
  check_state_fs
  if [[ ! -e "$MARKER" ]]; then
    # Only ever take over an empty directory (reset wipes what has the marker).
    [[ -z "$(find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name .lock -print -quit)" ]] ||
      die "$STATE_DIR is not empty and was not made by this script; choose another CEPH_RGW_STATE_DIR"
    touch "$MARKER"
  fi
  mkdir -p "$RUN_DIR" "$LOG_DIR" "$STATE_DIR/mon" "$STATE_DIR/osd" "$STATE_DIR/rgw" "$STATE_DIR/crash"
}

# One start/stop/reset at a time (parallel test runs share the cluster).
take_lock() {
  exec 9>"$STATE_DIR/.lock"
  flock -w 300 9 || die "timed out waiting for the lock on $STATE_DIR/.lock"
}

write_conf() {
  local fsid="$1"
  local tmp="$CONF.tmp.$$"
  cat >"$tmp" <<EOF
# Generated by e2e/services/ceph-rgw.sh on every start; edits are lost.
[global]
fsid = $fsid
mon host = v2:$HOST:$MON_PORT
public addr = $HOST
cluster addr = $HOST
public network = $HOST/32
cluster network = $HOST/32
ms bind ipv6 = false
ms bind msgr1 = false

# A local test cluster: no cephx. radosgw defaults to msgr2 "secure" mode,
# which needs cephx, so allow crc as well.
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
ms client mode = crc secure
ms mon cluster mode = crc secure
ms mon service mode = crc secure
ms cluster mode = crc secure
ms service mode = crc secure

# One OSD: every pool has a single replica and a handful of PGs.
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
mon max pg per osd = 1000
osd crush chooseleaf type = 0
mon data avail warn = 2
mon data avail crit = 1
# Commit monitor map changes (pool creation, OSD boot) quickly instead of batching them for 1 s.
paxos propose interval = 0.05
paxos min wait = 0.01

run dir = $RUN_DIR
pid file = $RUN_DIR/\$name.pid
admin socket = $RUN_DIR/\$name.asok
log file = $LOG_DIR/\$name.log
mon cluster log file = $LOG_DIR/cluster.log
log to stderr = false
err to stderr = true
crash dir = $STATE_DIR/crash
keyring = $STATE_DIR/keyring
mon data = $STATE_DIR/mon/\$cluster-\$id
osd data = $STATE_DIR/osd/\$cluster-\$id
rgw data = $STATE_DIR/rgw/\$cluster-\$id

[osd]
osd objectstore = bluestore
bluestore block create = true
bluestore block size = $OSD_SIZE
bluestore fsck on mount = false
osd memory target = 1073741824

[$RGW_NAME]
rgw frontends = beast endpoint=$HOST:$RGW_PORT
rgw enable usage log = false
# Reclaim deleted/overwritten object data after a minute rather than two hours.
rgw gc obj min wait = 60
rgw gc processor period = 60
EOF
  mv -f "$tmp" "$CONF"
}

ceph_cli() { timeout "$CLI_TIMEOUT" ceph -c "$CONF" --connect-timeout 20 "$@"; }
rgw_admin() { timeout "$CLI_TIMEOUT" radosgw-admin -c "$CONF" "$@"; }

# ---------------------------------------------------------------------------
# processes

pid_file_of() {
  case "$1" in
    mon) echo "$RUN_DIR/mon.$MON_ID.pid" ;;
    osd) echo "$RUN_DIR/osd.$OSD_ID.pid" ;;
    rgw) echo "$RUN_DIR/$RGW_NAME.pid" ;;
  esac
}

binary_of() {
  case "$1" in
    mon) echo ceph-mon ;;
    osd) echo ceph-osd ;;
    rgw) echo radosgw ;;
  esac
}

# A process that exited but was not reaped yet (a zombie: the daemons' parent is
# PID 1, which may reap late) counts as gone.
alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ "${stat:0:1}" != Z && "${stat:0:1}" != X ]]
}

# Prints the PID of a running daemon, or fails. Checks the executable so that a
# stale pid file whose PID was reused by another process does not count.
daemon_pid() {
  local pf pid exe
  pf="$(pid_file_of "$1")"
  [[ -s "$pf" ]] || return 1
  pid="$(tr -dc '0-9' <"$pf")"
  [[ -n "$pid" ]] && alive "$pid" || return 1
  exe="$(readlink "/proc/$pid/exe" 2>/dev/null || true)"
  exe="${exe% (deleted)}"
  [[ "$(basename "$exe")" == "$(binary_of "$1")" ]] || return 1
  echo "$pid"
}

# An anonymous ListBuckets: RGW answers it with an empty ListAllMyBucketsResult.
s3_answers() {
  curl -sf --max-time 2 "http://$HOST:$RGW_PORT/" 2>/dev/null | grep -q ListAllMyBucketsResult
}

# Something (anything) listens on the S3 port.
port_taken() {
  local rc=0
  curl -s -o /dev/null --max-time 2 "http://$HOST:$RGW_PORT/" 2>/dev/null || rc=$?
  ((rc != 7))
}

# Runs a Ceph daemon detached from the caller: its own session, stdio to a log
# file. ceph-mon and ceph-osd only return once the daemon is up (or failed).
launch() {
  local what="$1"
  shift
  local out="$LOG_DIR/$what.stdout.log" f
  rm -f "$(pid_file_of "$what")"
  # Keep the state dir from growing across many runs: past 20 MiB a log is
  # moved to .old (one generation) before its daemon starts.
  local logs=("$out" "$LOG_DIR/$(basename "$(pid_file_of "$what")" .pid).log")
  [[ "$what" != mon ]] || logs+=("$LOG_DIR/cluster.log")
  for f in "${logs[@]}"; do
    [[ -f "$f" ]] || continue
    (($(stat -c %s "$f") < 20971520)) || mv -f "$f" "$f.old"
  done
  log "starting $what"
  # 9>&-: the daemon must not inherit (and hold forever) the lock.
  if ! setsid "$@" -c "$CONF" </dev/null >>"$out" 2>&1 9>&-; then
    tail_logs "$what"
    die "$what failed to start"
  fi
}

# Waits (bounded) for a daemon to write its pid file and stay alive.
wait_for_pid() {
  local what="$1" deadline=$((SECONDS + 30))
  until daemon_pid "$what" >/dev/null; do
    ((SECONDS < deadline)) || { tail_logs "$what"; die "$what did not come up (no live pid)"; }
    sleep 0.2
  done
}

tail_logs() {
  local what="${1:-}" f
  for f in "$LOG_DIR"/*.log; do
    [[ -e "$f" ]] || continue
    case "$what" in
      mon) [[ "$f" == *mon.* ]] || continue ;;
      osd) [[ "$f" == *osd.* ]] || continue ;;
      rgw) [[ "$f" == *rgw* ]] || continue ;;
    esac
    echo "----- $f" >&2
    tail -n 25 "$f" >&2 || true
  done
}

start_mon() {
  daemon_pid mon >/dev/null && return 0
  launch mon ceph-mon -i "$MON_ID"
  wait_for_pid mon
}

wait_for_mon() {
  local deadline=$((SECONDS + 60))
  until ceph_cli mon stat >/dev/null 2>&1; do
    ((SECONDS < deadline)) || { tail_logs mon; die "the monitor does not answer"; }
    daemon_pid mon >/dev/null || { tail_logs mon; die "the monitor died"; }
    sleep 0.5
  done
}

start_osd() {
  daemon_pid osd >/dev/null && return 0
  launch osd ceph-osd -i "$OSD_ID"
  wait_for_pid osd
}

start_rgw() {
  daemon_pid rgw >/dev/null && return 0
  ! port_taken || die "$HOST:$RGW_PORT is taken by another process (set CEPH_RGW_PORT)"
  launch rgw radosgw -n "$RGW_NAME"
  wait_for_pid rgw
}

# First start only: monitor store, OSD, (the S3 user comes once rgw is up).
bootstrap() {
  local fsid
  if [[ ! -s "$STATE_DIR/fsid" ]]; then
    cat /proc/sys/kernel/random/uuid >"$STATE_DIR/fsid"
  fi
  fsid="$(cat "$STATE_DIR/fsid")"
  write_conf "$fsid"

  if [[ ! -e "$STATE_DIR/.mon-done" ]]; then
    log "cold start: creating the monitor"
    rm -rf "$STATE_DIR/mon/ceph-$MON_ID"
    mkdir -p "$STATE_DIR/mon/ceph-$MON_ID"
    ceph-authtool --create-keyring "$STATE_DIR/keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    monmaptool --create --clobber --fsid "$fsid" --addv "$MON_ID" "[v2:$HOST:$MON_PORT]" "$STATE_DIR/monmap" >/dev/null
    ceph-mon -c "$CONF" --mkfs -i "$MON_ID" --monmap "$STATE_DIR/monmap" --keyring "$STATE_DIR/keyring" \
      >>"$LOG_DIR/mon.mkfs.log" 2>&1 || { tail -n 30 "$LOG_DIR/mon.mkfs.log" >&2; die "ceph-mon --mkfs failed"; }
    touch "$STATE_DIR/.mon-done"
  fi

  start_mon
  wait_for_mon

  if [[ ! -e "$STATE_DIR/.osd-done" ]]; then
    log "cold start: creating the OSD (bluestore on a sparse $((OSD_SIZE / 1073741824)) GiB file)"
    local uuid id
    if [[ ! -s "$STATE_DIR/osd-uuid" ]]; then
      cat /proc/sys/kernel/random/uuid >"$STATE_DIR/osd-uuid"
    fi
    uuid="$(cat "$STATE_DIR/osd-uuid")"
    id="$(ceph_cli osd new "$uuid")" || die "ceph osd new failed"
    [[ "$id" == "$OSD_ID" ]] || die "expected OSD id $OSD_ID, got '$id' (run: $0 reset)"
    rm -rf "$STATE_DIR/osd/ceph-$OSD_ID"
    mkdir -p "$STATE_DIR/osd/ceph-$OSD_ID"
    ceph-osd -c "$CONF" -i "$OSD_ID" --mkfs --osd-uuid "$uuid" \
      >>"$LOG_DIR/osd.mkfs.log" 2>&1 || { tail -n 30 "$LOG_DIR/osd.mkfs.log" >&2; die "ceph-osd --mkfs failed"; }
    touch "$STATE_DIR/.osd-done"
  fi

  if [[ ! -e "$STATE_DIR/.pools-done" ]]; then
    # radosgw makes these lazily on the first CreateBucket/PutObject/CreateMultipartUpload,
    # ~2 s each; making them now keeps that out of the first tests.
    log "cold start: creating the RGW pools"
    local pool
    for pool in .rgw.root default.rgw.log default.rgw.control default.rgw.meta \
      default.rgw.buckets.index default.rgw.buckets.data default.rgw.buckets.non-ec; do
      ceph_cli osd pool create "$pool" 8 8 replicated >/dev/null 2>&1 || die "creating pool $pool failed"
      ceph_cli osd pool application enable "$pool" rgw >/dev/null 2>&1 || die "tagging pool $pool failed"
    done
    touch "$STATE_DIR/.pools-done"
  fi
}

ensure_user() {
  [[ -e "$STATE_DIR/.user-done" ]] && return 0
  log "cold start: creating the S3 user $S3_USER"
  if ! rgw_admin user info --uid "$S3_USER" >/dev/null 2>&1; then
    rgw_admin user create --uid "$S3_USER" --display-name "tus e2e tests" \
      --access-key "$S3_ACCESS_KEY_ID" --secret-key "$S3_SECRET_ACCESS_KEY" >/dev/null ||
      die "radosgw-admin user create failed"
  fi
  touch "$STATE_DIR/.user-done"
}

# Signed request with the test keys: proves the user exists and auth works.
s3_signed_ok() {
  local code
  # curl 7.88 does not add x-amz-content-sha256 itself; RGW requires it (sha256 of the empty body).
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 \
    -H 'x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855' \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
    "http://$HOST:$RGW_PORT/" 2>/dev/null || true)"
  [[ "$code" == 200 ]]
}

healthy() {
  daemon_pid mon >/dev/null && daemon_pid osd >/dev/null && daemon_pid rgw >/dev/null && s3_answers
}

cmd_start() {
  require_installed
  prepare_state_dir
  take_lock
  if [[ -e "$STATE_DIR/.user-done" ]] && healthy; then
    log "already running on http://$HOST:$RGW_PORT"
    return 0
  fi
  local t0 kind=warm
  t0="$(now)"
  [[ -e "$STATE_DIR/.user-done" ]] || kind=cold
  bootstrap
  start_osd
  start_rgw

  local deadline=$((SECONDS + START_TIMEOUT))
  until s3_answers; do
    local d
    for d in mon osd rgw; do
      daemon_pid "$d" >/dev/null || { tail_logs "$d"; die "$d died while waiting for S3"; }
    done
    ((SECONDS < deadline)) || { tail_logs; die "S3 did not answer on http://$HOST:$RGW_PORT within ${START_TIMEOUT}s"; }
    sleep 0.5
  done
  ensure_user
  local tries=0
  until s3_signed_ok; do
    ((++tries < 20)) || die "a signed S3 request with the test keys fails"
    sleep 0.5
  done
  daemon_pid rgw >/dev/null || { tail_logs rgw; die "radosgw exited"; }
  log "ready on http://$HOST:$RGW_PORT ($kind start, $(elapsed "$t0") s)"
}

stop_one() {
  local what="$1" pid deadline
  pid="$(daemon_pid "$what")" || { rm -f "$(pid_file_of "$what")"; return 0; }
  log "stopping $what (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + STOP_TIMEOUT))
  while alive "$pid"; do
    if ((SECONDS >= deadline)); then
      log "$what did not stop within ${STOP_TIMEOUT}s; killing it"
      kill -KILL "$pid" 2>/dev/null || true
      local k=0
      while alive "$pid" && ((k++ < 50)); do sleep 0.1; done
      break
    fi
    sleep 0.2
  done
  rm -f "$(pid_file_of "$what")"
}

cmd_stop() {
  [[ -d "$STATE_DIR" ]] || { log "not running (no state dir)"; return 0; }
  resolve_state_dir
  take_lock
  # Clients first, the monitor last (an OSD tells the monitor it is going down).
  stop_one rgw
  stop_one osd
  stop_one mon
  log "stopped (state kept in $STATE_DIR)"
}

cmd_status() {
  local rc=0 d pid
  if [[ ! -d "$STATE_DIR" ]]; then
    echo "state dir: $STATE_DIR (absent)"
    return 3
  fi
  resolve_state_dir
  echo "state dir: $STATE_DIR ($(du -sh "$STATE_DIR" 2>/dev/null | cut -f1) on disk)"
  for d in mon osd rgw; do
    if pid="$(daemon_pid "$d")"; then
      echo "$d: running (pid $pid, $(awk '/^VmRSS/ {r = $2} /^VmHWM/ {h = $2} END {printf "rss %d MiB, peak rss %d MiB", r / 1024, h / 1024}' "/proc/$pid/status"))"
    else
      echo "$d: stopped"
      rc=3
    fi
  done
  if s3_answers; then
    echo "s3: http://$HOST:$RGW_PORT answers"
  else
    echo "s3: http://$HOST:$RGW_PORT does not answer"
    rc=3
  fi
  return "$rc"
}

cmd_env() {
  cat <<EOF
export S3_ENDPOINT=http://$HOST:$RGW_PORT
export S3_REGION=$S3_REGION
export S3_ACCESS_KEY_ID=$S3_ACCESS_KEY_ID
export S3_SECRET_ACCESS_KEY=$S3_SECRET_ACCESS_KEY
export S3_FORCE_PATH_STYLE=true
EOF
}

cmd_reset() {
  [[ -d "$STATE_DIR" ]] || { log "nothing to reset"; return 0; }
  resolve_state_dir
  # Refuse to wipe a directory this script did not create.
  [[ -e "$MARKER" ]] || die "$STATE_DIR has no $(basename "$MARKER"); not wiping it"
  cmd_stop
  log "wiping $STATE_DIR"
  find "$STATE_DIR" -mindepth 1 -maxdepth 1 ! -name .lock -exec rm -rf {} +
}

cmd_logs() {
  [[ -d "$STATE_DIR" ]] && resolve_state_dir
  [[ -d "$LOG_DIR" ]] || { log "no logs in $LOG_DIR"; return 0; }
  tail_logs
}

case "${1:-}" in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  env) cmd_env ;;
  reset) cmd_reset ;;
  logs) cmd_logs ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
