#!/usr/bin/env python3
"""The original 2016 SpecialSnowflake's approach, re-created for comparison in a few lines: one
thread per flake per cycle, each running its command and sending its own PutMetricData call with
a shared boto3 client. Usage: original_tool.py FLAKES_DIR (runs every flake once, then exits)."""

import json
import pathlib
import subprocess
import sys
import threading

import boto3

client = boto3.client("cloudwatch")


def run(flake):
    output = subprocess.run(flake["flakeCommand"], shell=True, capture_output=True, text=True).stdout
    client.put_metric_data(
        Namespace=flake["flakeMetricNamespace"],
        MetricData=[{"MetricName": flake.get("flakeMetricName", flake["flakeName"]), "Value": float(output), "Unit": "None"}],
    )


flakes = [json.loads(path.read_text()) for path in sorted(pathlib.Path(sys.argv[1]).glob("*.json"))]
threads = [threading.Thread(target=run, args=(flake,)) for flake in flakes]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
