#!/bin/sh
# Prints 1 while a process named $1 runs; prints nothing and fails otherwise, so the metric goes
# missing and a "breaching" alarm on it fires. That is the liveness pattern: silence is the alert.
name="${1:?usage: process-alive.sh <process name>}"
if pgrep -x "$name" >/dev/null 2>&1; then
    echo 1
else
    echo "no process named $name is running" >&2
    exit 1
fi
