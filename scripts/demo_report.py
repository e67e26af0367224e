"""What landed in CloudWatch (LocalStack) during scripts/demo.sh, read back with boto3: every
metric of the given namespaces with its latest value, every alarm the daemon manages with its
state, and the flake logs with their last line."""

import argparse
import datetime
import pathlib

import boto3


def metrics(client, namespace):
    pages = client.get_paginator("list_metrics").paginate(Namespace=namespace)
    return [metric for page in pages for metric in page["Metrics"]]


def latest(client, metric, since, until):
    points = client.get_metric_statistics(
        Namespace=metric["Namespace"],
        MetricName=metric["MetricName"],
        Dimensions=metric.get("Dimensions", []),
        StartTime=since,
        EndTime=until,
        Period=60,
        Statistics=["Average", "SampleCount"],
    )["Datapoints"]
    if not points:
        return None, 0
    newest = max(points, key=lambda point: point["Timestamp"])
    return newest, int(sum(point["SampleCount"] for point in points))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--logs", required=True, type=pathlib.Path)
    parser.add_argument("--namespace", action="append", required=True)
    args = parser.parse_args()
    client = boto3.client("cloudwatch", endpoint_url=args.endpoint)
    # Whole minutes, so each statistics bucket is one minute of datapoints.
    now = datetime.datetime.now(datetime.timezone.utc).replace(second=0, microsecond=0)
    until = now + datetime.timedelta(minutes=2)
    since = until - datetime.timedelta(hours=1)

    print("== Metrics in CloudWatch (LocalStack): latest value, datapoints in the last hour")
    for namespace in args.namespace:
        for metric in sorted(metrics(client, namespace), key=lambda m: (m["MetricName"], str(m.get("Dimensions")))):
            dimensions = ",".join(f"{d['Name']}={d['Value']}" for d in metric.get("Dimensions", []))
            name = metric["MetricName"] + (f"{{{dimensions}}}" if dimensions else "")
            newest, count = latest(client, metric, since, until)
            if newest is None:
                print(f"  {namespace}  {name}  (no datapoints in the last hour)")
            else:
                minute = newest["Timestamp"].strftime("%H:%MZ")
                print(f"  {namespace}  {name}  latest={newest['Average']:g} in the minute of {minute}  ({count} datapoint(s))")

    print()
    print("== Alarms the daemon manages (FL-*), with their states")
    pages = list(client.get_paginator("describe_alarms").paginate(AlarmNamePrefix="FL-", AlarmTypes=["MetricAlarm", "CompositeAlarm"]))
    alarms = [a for page in pages for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", [])]
    for alarm in sorted(alarms, key=lambda a: a["AlarmName"]):
        print(f"  {alarm['AlarmName']}  {alarm['StateValue']}  ({alarm.get('StateReason', '')[:100]})")

    print()
    print(f"== Flake logs in {args.logs}: one line per run (last line shown)")
    for log in sorted(args.logs.glob("*.log")):
        lines = log.read_text().splitlines()
        print(f"  {log.name}: {len(lines)} line(s); last: {lines[-1] if lines else ''}")


if __name__ == "__main__":
    main()
