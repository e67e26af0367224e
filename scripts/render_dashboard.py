#!/usr/bin/env python3
"""Draw a SpecialSnowflake dashboard to a PNG, from CloudWatch's (or LocalStack's) own data.

Reads the dashboard body (GetDashboard, or a file that `snowflake dashboard` printed), then for
each graph widget fetches its series with GetMetricData (a SEARCH widget's series are found with
ListMetrics, which LocalStack can answer) and draws them with the widget's horizontal
annotations: alarm thresholds shaded on their alarming side, declared limits as plain lines.
The alarm status widget becomes a table of the alarms' states (DescribeAlarms).

    render_dashboard.py --dashboard NAME --out docs/dashboard-example.png [--hours 3]
    render_dashboard.py --body body.json --out x.png

It needs matplotlib and boto3 (scripts/render_dashboard.sh installs them into a venv of its own)
and the usual AWS environment (AWS_ENDPOINT_URL for LocalStack, AWS_REGION, credentials).
"""

import argparse
import datetime as dt
import json
import math
import re

import boto3
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

SEARCH = re.compile(r"SEARCH\('(?P<query>.*)', '(?P<stat>[^']+)', (?P<period>\d+)\)$")
TERM = re.compile(r'"((?:[^"\\]|\\.)*)"="((?:[^"\\]|\\.)*)"|MetricName="((?:[^"\\]|\\.)*)"')
COLOURS = {"above": "#d62728", "below": "#d62728"}
STATE_COLOURS = {"OK": "#2ca02c", "ALARM": "#d62728", "INSUFFICIENT_DATA": "#7f7f7f"}


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
            pages = client.get_paginator("list_metrics").paginate(Namespace=namespace, MetricName=name)
            for page in pages:
                for metric in page["Metrics"]:
                    dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
                    if all(dims.get(k) == v for k, v in fixed.items()):
                        label = " ".join(f"{k}={v}" for k, v in sorted(dims.items()) if k not in fixed) or name
                        out.append((label, namespace, name, sorted(dims.items())))
        else:
            namespace, name, rest = row[0], row[1], row[2:]
            dims = list(zip(rest[0::2], rest[1::2]))
            label = name + ("" if not dims else " " + " ".join(f"{k}={v}" for k, v in dims))
            out.append((label, namespace, name, dims))
    return out


def draw_graph(axis, client, properties, start, end):
    stat, period = properties["stat"], properties["period"]
    series = lines_of(client, properties)
    values_seen = []
    for index in range(0, len(series), 500):
        chunk = series[index : index + 500]
        queries = [metric_query(i, ns, name, dims, stat, period) for i, (_, ns, name, dims) in enumerate(chunk)]
        result = client.get_metric_data(MetricDataQueries=queries, StartTime=start, EndTime=end, ScanBy="TimestampAscending")
        by_id = {r["Id"]: r for r in result["MetricDataResults"]}
        for i, (label, *_rest) in enumerate(chunk):
            data = sorted(zip(by_id[f"m{i}"]["Timestamps"], by_id[f"m{i}"]["Values"]))
            if data:
                times, values = zip(*data)
                values_seen.extend(values)
                axis.plot(times, values, marker="." if len(data) < 30 else None, linewidth=1.4, label=label)
    lines = properties.get("annotations", {}).get("horizontal", [])
    levels = values_seen + [line["value"] for line in lines]
    low, high = (min(levels), max(levels)) if levels else (0, 1)
    margin = (high - low) * 0.15 or 1
    axis.set_ylim(low - margin, high + margin)
    for line in lines:
        fill = line.get("fill")
        colour = COLOURS.get(fill, "#1f77b4")
        axis.axhline(line["value"], color=colour, linestyle="--" if fill else ":", linewidth=1.2)
        if fill == "above":
            axis.axhspan(line["value"], high + margin, color=colour, alpha=0.08)
        elif fill == "below":
            axis.axhspan(low - margin, line["value"], color=colour, alpha=0.08)
        axis.annotate(
            f"{line['label']} ({line['value']:g})",
            xy=(1, line["value"]),
            xycoords=("axes fraction", "data"),
            xytext=(-4, 3),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color=colour,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )
    axis.set_title(f"{properties['title']}\n{stat}, {period} s", fontsize=9)
    axis.tick_params(labelsize=7)
    axis.xaxis.set_major_formatter(matplotlib.dates.DateFormatter("%H:%M"))
    if series:
        axis.legend(fontsize=6, loc="upper left")
    else:
        axis.text(0.5, 0.5, "no data", transform=axis.transAxes, ha="center")


def draw_alarms(axis, client, region_arns):
    axis.axis("off")
    names = [arn.split(":alarm:", 1)[1] for arn in region_arns]
    states = {}
    for index in range(0, len(names), 100):
        for alarm in client.describe_alarms(AlarmNames=names[index : index + 100])["MetricAlarms"]:
            states[alarm["AlarmName"]] = alarm["StateValue"]
    columns = 2
    for index, name in enumerate(names):
        state = states.get(name, "missing")
        x, y = (index % columns) / columns, 1 - (index // columns + 0.5) / math.ceil(len(names) / columns)
        axis.text(x + 0.01, y, f"● {name}: {state}", fontsize=8, color=STATE_COLOURS.get(state, "black"), transform=axis.transAxes)
    axis.set_title("Alarm status", fontsize=9)


def latest_value(client, namespace, name, dims, end):
    """The newest value of a metric in the last hour, or None."""
    result = client.get_metric_data(
        MetricDataQueries=[metric_query(0, namespace, name, [(d["Name"], d["Value"]) for d in dims], "Average", 60)],
        StartTime=end - dt.timedelta(hours=1),
        EndTime=end + dt.timedelta(minutes=2),
        ScanBy="TimestampDescending",
    )
    values = result["MetricDataResults"][0]["Values"]
    return values[0] if values else None


def seed_history(client, graphs, hours):
    """Publishes an illustrative history before each explicit metric line's newest real value: a
    wander from near the graph's threshold towards that value, so a picture for the docs shows
    lines, limits and shading. For documentation pictures against LocalStack only; never point
    this at a real account."""
    import random

    rng = random.Random(11)
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    for widget in graphs:
        properties = widget["properties"]
        thresholds = [line["value"] for line in properties.get("annotations", {}).get("horizontal", [])]
        step = max(60, properties["period"])
        for row in properties["metrics"]:
            if isinstance(row[0], dict):
                continue
            namespace, name, rest = row[0], row[1], row[2:]
            dims = [{"Name": k, "Value": v} for k, v in zip(rest[0::2], rest[1::2])]
            real = latest_value(client, namespace, name, dims, now)
            target = real if real is not None else (thresholds[0] if thresholds else 1.0)
            start = thresholds[0] if thresholds else target
            spread = max(abs(target - start) * 0.15, abs(target) * 0.05, 0.05)
            count = int(hours * 3600 // step)
            value, data = start, []
            for index in range(count, 0, -1):
                pull = target + (start - target) * index / count
                value = value + rng.uniform(-1, 1) * spread + (pull - value) * 0.2
                if min(start, target) >= 0:
                    value = abs(value)  # counts and percentages do not go below zero
                data.append({"MetricName": name, "Dimensions": dims, "Timestamp": now - dt.timedelta(seconds=index * step), "Value": value})
            for index in range(0, len(data), 500):
                client.put_metric_data(Namespace=namespace, MetricData=data[index : index + 500])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dashboard", help="read the body with GetDashboard")
    source.add_argument("--body", help="a body file, as `snowflake dashboard` prints it")
    parser.add_argument("--out", required=True, help="PNG to write")
    parser.add_argument("--hours", type=float, default=3, help="time range drawn, ending now")
    parser.add_argument("--seed-history", action="store_true", help="publish an illustrative history first (LocalStack only)")
    args = parser.parse_args()

    client = boto3.client("cloudwatch")
    if args.dashboard:
        body = json.loads(client.get_dashboard(DashboardName=args.dashboard)["DashboardBody"])
    else:
        with open(args.body) as file:
            body = json.load(file)
    widgets = body["widgets"]
    graphs = [w for w in widgets if w["type"] == "metric"]
    alarm_widgets = [w for w in widgets if w["type"] == "alarm"]
    if args.seed_history:
        seed_history(client, graphs, args.hours)
    header = next((w["properties"]["markdown"] for w in widgets if w["type"] == "text"), "")

    graph_rows = math.ceil(len(graphs) / 2)
    alarm_rows = math.ceil(sum(len(w["properties"]["alarms"]) for w in alarm_widgets) / 2)
    ratios = ([0.25 + 0.18 * alarm_rows] if alarm_widgets else []) + [1] * graph_rows
    figure = plt.figure(figsize=(13, 0.8 + 3.1 * sum(ratios)))
    grid = figure.add_gridspec(len(ratios), 2, hspace=0.55, wspace=0.15, height_ratios=ratios)
    end = dt.datetime.now(dt.timezone.utc)
    start = end - dt.timedelta(hours=args.hours)
    row = 0
    if alarm_widgets:
        arns = [arn for w in alarm_widgets for arn in w["properties"]["alarms"]]
        draw_alarms(figure.add_subplot(grid[0, :]), client, arns)
        row = 1
    for index, widget in enumerate(graphs):
        properties = widget["properties"]
        regional = boto3.client("cloudwatch", region_name=properties["region"])
        draw_graph(figure.add_subplot(grid[row + index // 2, index % 2]), regional, properties, start, end)
    title = header.splitlines()[0].lstrip("# ") if header else "dashboard"
    figure.suptitle(f"{title}  (rendered from CloudWatch data by scripts/render_dashboard.py)", fontsize=11)
    figure.savefig(args.out, dpi=90, bbox_inches="tight")
    print(f"wrote {args.out}: {len(graphs)} graphs, {sum(len(w['properties']['alarms']) for w in alarm_widgets)} alarms")


if __name__ == "__main__":
    main()
