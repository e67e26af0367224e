#!/bin/sh
# Share of memory still available to new work, in percent, e.g. "81.3".
awk '/^MemTotal:/ { total = $2 } /^MemAvailable:/ { available = $2 }
     END { if (total > 0) printf "%.1f\n", available * 100 / total; else exit 1 }' /proc/meminfo
