#!/usr/bin/env bash
# Installs Debian packages when apt can run here (as root, or through sudo without a password);
# install.sh uses it only for what pip does not have, and nothing the scripts need depends on it.
#
#   bash tools/apt_packages.sh PACKAGE...
#
# Exit 0 when every package is installed afterwards; 3 when apt cannot run here (one line says
# so, nothing is tried); 1 when apt ran and failed, or a lock stayed held (one line naming it).
# apt's locks are waited for, up to APT_LOCK_WAIT seconds (default 600): right after boot,
# unattended-upgrades holds them for minutes, and apt alone would fail at once.
# APT_LOCKS and APT_GET may be set to other lock files and another command (the tests do).
set -euo pipefail
APT_LOCK_WAIT=${APT_LOCK_WAIT:-600}
APT_LOCKS=${APT_LOCKS:-/var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/apt/lists/lock /var/cache/apt/archives/lock}
APT_GET=${APT_GET:-apt-get}

missing=()
for package in "$@"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v "${APT_GET%% *}" >/dev/null 2>&1 || ! command -v dpkg >/dev/null 2>&1; then
  echo "apt: no apt-get here; not installed: ${missing[*]}" >&2
  exit 3
fi
if [ "$(id -u)" = 0 ]; then
  SUDO=()
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
  SUDO=(sudo -n)
else
  echo "apt: needs root or sudo, which this user lacks; not installed: ${missing[*]}" >&2
  exit 3
fi

# The fcntl lock on a file, as /proc/locks lists it: "major:minor:inode" in its own format.
lock_key() {
  local device
  device=$(stat -c '%d' "$1") || return 1
  printf '%02x:%02x:%s' $(( (device >> 8) & 0xfff )) $(( (device & 0xff) | ((device >> 12) & 0xfff00) )) \
    "$(stat -c '%i' "$1")"
}

# The first of APT_LOCKS that a process holds, or nothing. Read from /proc/locks, which needs no
# privileges (trying the lock would need write access to it).
held_lock() {
  local lock key
  for lock in $APT_LOCKS; do
    [ -e "$lock" ] || continue
    key=$(lock_key "$lock") || continue
    if awk -v key="$key" '$2 != "->" && $6 == key { found = 1 } END { exit !found }' /proc/locks; then
      echo "$lock"
      return 0
    fi
  done
}

wait_for_locks() {
  local deadline=$((SECONDS + APT_LOCK_WAIT)) lock told=""
  while lock=$(held_lock) && [ -n "$lock" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "apt: $lock is still held after ${APT_LOCK_WAIT} s (another apt, or unattended-upgrades, is running); run make install again when it is done, or raise APT_LOCK_WAIT" >&2
      exit 1
    fi
    if [ -z "$told" ]; then
      echo "apt: waiting for $lock, held by another apt (up to ${APT_LOCK_WAIT} s)" >&2
      told=1
    fi
    sleep 1
  done
}

apt_get() {
  wait_for_locks
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" $APT_GET -o "DPkg::Lock::Timeout=$APT_LOCK_WAIT" "$@"
}

echo "apt: installing ${missing[*]}" >&2
if apt_get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
    || { apt_get update -q >/dev/null && apt_get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; then
  exit 0
fi
echo "apt: could not install ${missing[*]} (apt-get's messages are above)" >&2
exit 1
