#!/usr/bin/env python3
"""Draw a SpecialSnowflake dashboard to a PNG from datapoints the daemon really published.

The input is the file scripts/fetch_dashboard_data.py wrote (scripts/render_dashboard.sh record
makes it): the dashboard body as CloudWatch (LocalStack) returned it, each graph widget's series
with the datapoints GetMetricData returned for the recorded time range, and the alarms' states.
This script adds nothing to them: each graph widget is drawn with its series and its horizontal
annotations (alarm thresholds shaded on their alarming side, declared limits as plain lines); a
series without datapoints is listed as such; the alarm status widget becomes a table of the
alarms' states.

    render_dashboard.py --data docs/dashboard-example.json --out docs/dashboard-example.png

It needs matplotlib only (scripts/render_dashboard.sh installs it into a venv of its own).
"""

import argparse
import datetime as dt
import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLOURS = {"above": "#d62728", "below": "#d62728"}
STATE_COLOURS = {"OK": "#2ca02c", "ALARM": "#d62728", "INSUFFICIENT_DATA": "#7f7f7f"}


def when(text):
    return dt.datetime.fromisoformat(text)


def draw_graph(axis, properties, series, start, end):
    stat, period = properties["stat"], properties["period"]
    values_seen, empty = [], []
    for line in series:
        if not line["values"]:
            empty.append(line["label"])
            continue
        times = [when(t) for t in line["timestamps"]]
        values_seen.extend(line["values"])
        axis.plot(times, line["values"], marker="." if len(times) < 40 else None, linewidth=1.4, label=line["label"])
    lines = properties.get("annotations", {}).get("horizontal", [])
    levels = values_seen + [line["value"] for line in lines]
    low, high = (min(levels), max(levels)) if levels else (0, 1)
    margin = (high - low) * 0.15 or 1
    axis.set_ylim(low - margin, high + margin)
    axis.set_xlim(start - dt.timedelta(minutes=1), end)  # a point at the first minute stays in view
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
    if values_seen:
        axis.legend(fontsize=6, loc="upper left", ncol=2 if len(series) > 6 else 1)
    if empty:
        names = ", ".join(empty[:3]) + (f" and {len(empty) - 3} more" if len(empty) > 3 else "")
        axis.text(0.02, 0.06, f"no datapoints in this range: {names}", transform=axis.transAxes, ha="left", va="bottom", fontsize=7, color="#555")


def draw_alarms(axis, alarms):
    axis.axis("off")
    columns = 2
    rows = math.ceil(len(alarms) / columns) or 1
    for index, (name, alarm) in enumerate(sorted(alarms.items())):
        state = alarm["state"]
        x, y = (index % columns) / columns, 1 - (index // columns + 0.5) / rows
        axis.text(x + 0.01, y, f"● {name}: {state}", fontsize=8, color=STATE_COLOURS.get(state, "black"), transform=axis.transAxes)
    axis.set_title("Alarm status", fontsize=9)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the file fetch_dashboard_data.py wrote")
    parser.add_argument("--out", required=True, help="PNG to write")
    args = parser.parse_args()

    with open(args.data) as file:
        data = json.load(file)
    widgets = data["body"]["widgets"]
    graphs = [w for w in widgets if w["type"] == "metric"]
    assert len(graphs) == len(data["graphs"]), "one series list per graph widget"
    header = next((w["properties"]["markdown"] for w in widgets if w["type"] == "text"), "")
    start, end = when(data["from"]), when(data["to"])

    graph_rows = math.ceil(len(graphs) / 2)
    alarm_rows = math.ceil(len(data["alarms"]) / 2)
    ratios = ([0.1 + 0.09 * alarm_rows] if data["alarms"] else []) + [1] * graph_rows
    height = 0.8 + 3.1 * sum(ratios)
    figure = plt.figure(figsize=(13, height))
    # Margins in inches, whatever the figure's height: the title needs about 0.8 of them.
    grid = figure.add_gridspec(len(ratios), 2, hspace=0.55, wspace=0.15, height_ratios=ratios, top=1 - 1.1 / height, bottom=0.3 / height)
    row = 0
    if data["alarms"]:
        draw_alarms(figure.add_subplot(grid[0, :]), data["alarms"])
        row = 1
    for index, (widget, series) in enumerate(zip(graphs, data["graphs"])):
        draw_graph(figure.add_subplot(grid[row + index // 2, index % 2]), widget["properties"], series, start, end)
    title = header.splitlines()[0].lstrip("# ") if header else data["dashboard"]
    minutes = round((end - start).total_seconds() / 60)
    figure.suptitle(
        f"{title}: {start:%Y-%m-%d %H:%M}-{end:%H:%M} UTC ({minutes} min), as published by the daemon to LocalStack\n"
        "(datapoints read back with GetMetricData; drawn by scripts/render_dashboard.py)",
        fontsize=11,
        y=1 - 0.15 / height,
    )
    figure.savefig(args.out, dpi=90, bbox_inches="tight")
    points = sum(len(line["values"]) for series in data["graphs"] for line in series)
    print(f"wrote {args.out}: {len(graphs)} graphs, {points} datapoints, {len(data['alarms'])} alarms")


if __name__ == "__main__":
    main()
