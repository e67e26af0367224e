#!/bin/sh
# Job: archives a directory (BACKUP_SOURCE, default ./flakes) into BACKUP_DIR as a dated .tar.gz,
# keeps the newest BACKUP_KEEP archives (default 7) and prints the new archive's size in bytes.
# Any failure (unreadable source, full disk) exits non-zero: the job monitor counts it as failed.
set -eu
source_dir="${BACKUP_SOURCE:-./flakes}"
backup_dir="${BACKUP_DIR:-/tmp/snowflake-backups}"
keep="${BACKUP_KEEP:-7}"
mkdir -p "$backup_dir"
archive="$backup_dir/backup-$(date -u +%Y%m%dT%H%M%SZ).tar.gz"
trap 'rm -f "$archive.partial"' EXIT
tar -czf "$archive.partial" -C "$source_dir" .
mv "$archive.partial" "$archive"
ls -1t "$backup_dir"/backup-*.tar.gz | tail -n +"$((keep + 1))" | while read -r old; do rm -f "$old"; done
wc -c <"$archive" | tr -d ' '
