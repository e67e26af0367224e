#!/bin/sh
# Memory figures as flakeOutput "json": an array of {"name", "value", "unit"} entries, e.g.
# [{"name": "MemAvailable", "value": 8123456, "unit": "Kilobytes"}, ...].
awk 'BEGIN { printf "[" }
     /^(MemTotal|MemAvailable|Cached|SwapFree):/ {
         sub(":", "", $1)
         printf "%s{\"name\": \"%s\", \"value\": %d, \"unit\": \"Kilobytes\"}", (n++ ? ", " : ""), $1, $2
     }
     END { print "]" }' /proc/meminfo
