#!/usr/bin/env bash
# Debian's ffmpeg (ffprobe and ffmpeg) for the media and poster processors and their tests
# (e2e/media.test.ts, server/src/media/). Nothing runs in the background.
#
# Usage: e2e/services/ffmpeg.sh <command>
#   install  apt-get install ffmpeg if ffprobe or ffmpeg is missing (root or sudo)
#   check    exit 0 when both answer -version, print their version
#
# Settings (environment):
#   FFPROBE_BIN, FFMPEG_BIN   the binaries to check (default: ffprobe, ffmpeg on PATH)
set -euo pipefail

FFPROBE="${FFPROBE_BIN:-ffprobe}"
FFMPEG="${FFMPEG_BIN:-ffmpeg}"

log() { printf 'ffmpeg: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

present() { command -v "$FFPROBE" >/dev/null 2>&1 && command -v "$FFMPEG" >/dev/null 2>&1; }

cmd_check() {
  present || die "ffprobe or ffmpeg not found; run: $0 install"
  timeout 10 "$FFPROBE" -hide_banner -version | head -n 1
  timeout 10 "$FFMPEG" -hide_banner -version | head -n 1
}

cmd_install() {
  if present; then
    log "already installed ($("$FFMPEG" -hide_banner -version | head -n 1 | awk '{print $3}'))"
    return 0
  fi
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "install needs root (missing ffprobe/ffmpeg)"
    sudo=(sudo)
  fi
  log "installing ffmpeg"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends ffmpeg
  cmd_check
}

case "${1:-}" in
  install) cmd_install ;;
  check) cmd_check ;;
  *)
    echo "usage: $0 install|check" >&2
    exit 2
    ;;
esac
