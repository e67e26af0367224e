#!/bin/sh
# Percentage of the filesystem holding $1 (default /) that is in use, e.g. "37".
df -P "${1:-/}" | awk 'NR == 2 { sub("%", "", $5); print $5 }'
