#!/bin/sh
# One-minute load average of the host, e.g. "0.42".
cut -d' ' -f1 /proc/loadavg
