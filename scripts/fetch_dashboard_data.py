#!/usr/bin/env python3
"""Fetch what a SpecialSnowflake dashboard shows, from CloudWatch (or LocalStack), into one JSON
file that scripts/render_dashboard.py draws: the dashboard body (GetDashboard), every graph
widget's datapoints with the widget's own statistic and period (GetMetricData; a SEARCH widget's
series are found with ListMetrics, which LocalStack can answer), and the alarm widget's alarms'
states (DescribeAlarms). Nothing is made up: a series with no datapoints is kept empty.

    fetch_dashboard_data.py --dashboard NAME --since 2026-12-06T08:00:00Z --out data.json [--note TEXT]

It needs boto3 and the usual AWS environment (AWS_ENDPOINT_URL for LocalStack, AWS_REGION,
credentials). scripts/render_dashboard.sh runs it at the end of a recording.
"""

import argparse
import datetime as dt
import json
import re

import boto3

SEARCH = re.compile(r"SEARCH\('(?P<query>.*)', '(?P<stat>[^']+)', (?P<period>\d+)\)$")
TERM = re.compile(r'"((?:[^"\\]|\\.)*)"="((?:[^"\\]|\\.)*)"|MetricName="((?:[^"\\]|\\.)*)"')


def metric_query(index, namespace, name, dimensions, stat, period):
    return {
        "Id": f"m{index}",
        "MetricStat": {
            "Metric": {
                "Namespace": namespace,
                "MetricName": name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions],
            },
            "Period": period,
            "Stat": stat,
        },
        "ReturnData": True,
    }


def lines_of(client, properties):
    """(label, namespace, name, [(dim, value)]) for every series of a graph widget."""
    out = []
    for row in properties["metrics"]:
        if isinstance(row[0], dict):
            match = SEARCH.match(row[0]["expression"])
            query = match.group("query")
            namespace = re.search(r'^\{"((?:[^"\\]|\\.)*)"|Namespace="((?:[^"\\]|\\.)*)"', query)
            namespace = (namespace.group(1) or namespace.group(2)).replace('\\"', '"')
            name, fixed = None, {}
            for term in TERM.finditer(query):
                if term.group(3) is not None:
                    name = term.group(3)
                else:
                    fixed[term.group(1)] = term.group(2)
            # A search without MetricName= matches every metric of the namespace with those dimensions.
            query = {"Namespace": namespace} | ({"MetricName": name} if name else {})
            found = []
            for page in client.get_paginator("list_metrics").paginate(**query):
                for metric in page["Metrics"]:
                    dims = {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}
                    if all(dims.get(k) == v for k, v in fixed.items()):
                        rest = " ".join(f"{k}={v}" for k, v in sorted(dims.items()) if k not in fixed)
                        label = rest if name else " ".join(filter(None, [metric["MetricName"], rest]))
                        found.append((label, namespace, metric["MetricName"], sorted(dims.items())))
            out.extend(sorted(found))
        else:
            namespace, name, rest = row[0], row[1], row[2:]
            dims = list(zip(rest[0::2], rest[1::2]))
            label = name + ("" if not dims else " " + " ".join(f"{k}={v}" for k, v in dims))
            out.append((label, namespace, name, dims))
    return out


def fetch_series(client, properties, start, end):
    """Every series of a graph widget with its datapoints, oldest first."""
    stat, period = properties["stat"], properties["period"]
    series = lines_of(client, properties)
    out = []
    for index in range(0, len(series), 500):
        chunk = series[index : index + 500]
        queries = [metric_query(i, ns, name, dims, stat, period) for i, (_, ns, name, dims) in enumerate(chunk)]
        results = {}
        kwargs = {"MetricDataQueries": queries, "StartTime": start, "EndTime": end, "ScanBy": "TimestampAscending"}
        while True:
            answer = client.get_metric_data(**kwargs)
            for result in answer["MetricDataResults"]:
                got = results.setdefault(result["Id"], [])
                got.extend(zip(result["Timestamps"], result["Values"]))
            if not answer.get("NextToken"):
                break
            kwargs["NextToken"] = answer["NextToken"]
        for i, (label, namespace, name, dims) in enumerate(chunk):
            data = sorted(results.get(f"m{i}", []))
            out.append(
                {
                    "label": label,
                    "namespace": namespace,
                    "metric": name,
                    "dimensions": dict(dims),
                    "timestamps": [t.astimezone(dt.timezone.utc).isoformat() for t, _ in data],
                    "values": [v for _, v in data],
                }
            )
    return out


def alarm_states(client, arns):
    names = [arn.split(":alarm:", 1)[1] for arn in arns]
    states = {}
    for index in range(0, len(names), 100):
        answer = client.describe_alarms(AlarmNames=names[index : index + 100], AlarmTypes=["MetricAlarm", "CompositeAlarm"])
        for alarm in answer["MetricAlarms"] + answer.get("CompositeAlarms", []):
            states[alarm["AlarmName"]] = {"state": alarm["StateValue"], "since": alarm["StateUpdatedTimestamp"].astimezone(dt.timezone.utc).isoformat()}
    return {name: states.get(name, {"state": "missing", "since": None}) for name in names}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dashboard", required=True, help="read the body with GetDashboard")
    parser.add_argument("--since", required=True, help="start of the time range (RFC 3339); it ends now")
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--note", default="", help="how the data was made, kept in the file")
    args = parser.parse_args()

    client = boto3.client("cloudwatch")
    body = json.loads(client.get_dashboard(DashboardName=args.dashboard)["DashboardBody"])
    start = dt.datetime.fromisoformat(args.since.replace("Z", "+00:00"))
    end = dt.datetime.now(dt.timezone.utc)
    graphs = []
    for widget in body["widgets"]:
        if widget["type"] == "metric":
            regional = boto3.client("cloudwatch", region_name=widget["properties"]["region"])
            graphs.append(fetch_series(regional, widget["properties"], start, end))
    arns = [arn for w in body["widgets"] if w["type"] == "alarm" for arn in w["properties"]["alarms"]]
    data = {
        "dashboard": args.dashboard,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "note": args.note,
        "body": body,
        "graphs": graphs,
        "alarms": alarm_states(client, arns),
    }
    with open(args.out, "w") as file:
        json.dump(data, file, indent=1, sort_keys=True)
        file.write("\n")
    points = sum(len(s["values"]) for g in graphs for s in g)
    print(f"wrote {args.out}: {len(graphs)} graphs, {sum(len(g) for g in graphs)} series, {points} datapoints, {len(arns)} alarms")


if __name__ == "__main__":
    main()
