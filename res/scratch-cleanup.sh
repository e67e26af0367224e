#!/bin/sh
# Job: removes files older than 7 days from the scratch directory and prints how many it removed.
# Being a number, that count is also published (jobs publish output that is one number).
set -eu
dir="${SCRATCH_DIR:-/tmp/snowflake-scratch}"
mkdir -p "$dir"
find "$dir" -type f -mtime +7 -print -delete | wc -l
