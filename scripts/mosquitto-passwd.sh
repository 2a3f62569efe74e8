#!/usr/bin/env bash
# Build a hashed Mosquitto password file from a plain "user:password" list.
# usage: scripts/mosquitto-passwd.sh PLAIN_FILE OUT_FILE
set -euo pipefail
plain=${1:?plain user:password file}
out=${2:?output file}
grep -v '^\s*#' "$plain" | grep -v '^\s*$' > "$out"
mosquitto_passwd -U "$out"
chmod 600 "$out"
echo "wrote $out"
