//! The dashboard body CloudWatch takes (PutDashboard's `DashboardBody`), drawn from a
//! [`DashboardInput`]: a header text widget, alarm status widgets, then the graphs two to a row.
//!
//! Every widget has an explicit position and JSON objects are written with sorted keys, so the
//! same input gives the same body byte for byte: a reconcile compares, it never rewrites for
//! nothing. CloudWatch's limits are kept: at most 500 widgets (graphs beyond are left out and
//! named in a text widget) and at most 100 alarms per alarm widget.

use serde_json::{Value, json};

use super::input::{DashboardInput, Fill, Graph, Search, Series};

/// CloudWatch's limit of widgets on one dashboard.
pub const MAX_WIDGETS: usize = 500;
/// CloudWatch's limit of alarms in one alarm status widget.
pub const MAX_ALARMS_PER_WIDGET: usize = 100;
/// Left-out graphs named in the note; the rest are counted.
const NAMED_LEFT_OUT: usize = 50;
const GRID_WIDTH: u32 = 24;
const GRAPH_WIDTH: u32 = 12;
const GRAPH_HEIGHT: u32 = 6;
const HEADER_HEIGHT: u32 = 2;

/// The AWS account and partition the alarms live in: alarm widgets list alarms by ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub partition: String,
    pub id: String,
}

impl Account {
    /// The account and partition of an alarm ARN (`arn:aws:cloudwatch:eu-west-1:123456789012:alarm:x`).
    pub fn of_arn(arn: &str) -> Option<Account> {
        let mut parts = arn.splitn(6, ':');
        let (_, partition, _, _, id) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        (!partition.is_empty() && !id.is_empty()).then(|| Account { partition: partition.to_string(), id: id.to_string() })
    }

    /// CloudFormation's pseudo parameters, for a body printed when the account is not known
    /// (`snowflake dashboard` with no access to CloudWatch); `Fn::Sub` fills them in.
    pub fn placeholder() -> Account {
        Account { partition: "${AWS::Partition}".to_string(), id: "${AWS::AccountId}".to_string() }
    }

    fn alarm_arn(&self, region: &str, name: &str) -> String {
        format!("arn:{}:cloudwatch:{region}:{}:alarm:{name}", self.partition, self.id)
    }
}

/// A generated body and what had to be left out to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct Body {
    pub json: Value,
    /// Graphs that did not fit in 500 widgets.
    pub left_out: usize,
}

impl Body {
    /// The body as PutDashboard takes it: compact, keys sorted.
    pub fn text(&self) -> String {
        self.json.to_string()
    }

    pub fn widgets(&self) -> usize {
        widget_count(&self.json)
    }
}

/// Widgets in a body (0 if it has none or is not a dashboard body).
pub fn widget_count(body: &Value) -> usize {
    body.get("widgets").and_then(Value::as_array).map_or(0, Vec::len)
}

/// The dashboard body of `input`. Alarms are listed only when `account` is known: an alarm widget
/// takes ARNs.
pub fn body(input: &DashboardInput, account: Option<&Account>) -> Body {
    let mut widgets = vec![header(input)];
    let mut y = HEADER_HEIGHT;
    if let Some(account) = account {
        // Half the widgets at most (25,000 alarms), so graphs always have room.
        for (index, chunk) in input.alarms.chunks(MAX_ALARMS_PER_WIDGET).take(MAX_WIDGETS / 2).enumerate() {
            let arns: Vec<String> = chunk.iter().map(|alarm| account.alarm_arn(&alarm.region, &alarm.name)).collect();
            // Two rows of status tiles fit in 2 units; each further eight alarms take one more.
            let height = (2 + chunk.len().div_ceil(8) as u32).min(12);
            let title = if input.alarms.len() > MAX_ALARMS_PER_WIDGET {
                format!("Alarms managed by {} ({} of {})", input.host, index + 1, input.alarms.len().div_ceil(MAX_ALARMS_PER_WIDGET))
            } else {
                format!("Alarms managed by {}", input.host)
            };
            widgets.push(json!({
                "type": "alarm", "x": 0, "y": y, "width": GRID_WIDTH, "height": height,
                "properties": {"title": title, "alarms": arns},
            }));
            y += height;
        }
    }
    let room = MAX_WIDGETS - widgets.len();
    let (shown, left_out) =
        if input.graphs.len() > room { (&input.graphs[..room - 1], &input.graphs[room - 1..]) } else { (&input.graphs[..], &[][..]) };
    for (index, graph) in shown.iter().enumerate() {
        let (column, row) = (index as u32 % 2, index as u32 / 2);
        widgets.push(graph_widget(graph, column * GRAPH_WIDTH, y + row * GRAPH_HEIGHT));
    }
    if !left_out.is_empty() {
        let rows = shown.len().div_ceil(2) as u32;
        widgets.push(left_out_note(left_out, y + rows * GRAPH_HEIGHT));
    }
    Body { json: json!({ "widgets": widgets }), left_out: left_out.len() }
}

fn header(input: &DashboardInput) -> Value {
    let markdown = format!(
        "## SpecialSnowflake on {host}\n\
         Maintained by the snowflake daemon on host **{host}** from its flake files: every published metric, alarm \
         thresholds and declared limits (`flakeAnnotations`). **Edits made here are overwritten** at its next reconcile; \
         change the flakes instead (`snowflake dashboard` prints this body).",
        host = input.host
    );
    json!({"type": "text", "x": 0, "y": 0, "width": GRID_WIDTH, "height": HEADER_HEIGHT, "properties": {"markdown": markdown}})
}

fn graph_widget(graph: &Graph, x: u32, y: u32) -> Value {
    let metrics: Vec<Value> = match &graph.series {
        Series::Lines(lines) => lines
            .iter()
            .map(|line| {
                let mut row = vec![json!(line.namespace), json!(line.metric_name)];
                for (name, value) in &line.dimensions {
                    row.extend([json!(name), json!(value)]);
                }
                Value::Array(row)
            })
            .collect(),
        Series::Search(search) => vec![json!([{
            "expression": format!("SEARCH('{}', '{}', {})", search_text(search), graph.stat, graph.period),
            "id": "e1",
        }])],
    };
    let horizontal: Vec<Value> = graph
        .annotations
        .iter()
        .map(|annotation| {
            let mut line = json!({"label": annotation.label, "value": annotation.value});
            match annotation.fill {
                Fill::Above => line["fill"] = json!("above"),
                Fill::Below => line["fill"] = json!("below"),
                Fill::None => {}
            }
            line
        })
        .collect();
    let mut properties = json!({
        "title": graph.title, "region": graph.region, "view": "timeSeries", "stacked": false,
        "stat": graph.stat, "period": graph.period, "metrics": metrics,
    });
    if !horizontal.is_empty() {
        properties["annotations"] = json!({ "horizontal": horizontal });
    }
    json!({"type": "metric", "x": x, "y": y, "width": GRAPH_WIDTH, "height": GRAPH_HEIGHT, "properties": properties})
}

/// The search string of a `SEARCH` expression: `{"Namespace","Dim"} MetricName="x" Dim="v"`.
fn search_text(search: &Search) -> String {
    let mut terms = Vec::new();
    match &search.dimension_names {
        Some(names) => {
            let schema: Vec<String> = std::iter::once(&search.namespace).chain(names).map(|name| quoted(name)).collect();
            terms.push(format!("{{{}}}", schema.join(",")));
        }
        None => terms.push(format!("Namespace={}", quoted(&search.namespace))),
    }
    if let Some(metric) = &search.metric_name {
        terms.push(format!("MetricName={}", quoted(metric)));
    }
    terms.extend(search.fixed.iter().map(|(name, value)| format!("{}={}", quoted(name), quoted(value))));
    terms.join(" ")
}

/// A search term in double quotes, with quotes and backslashes escaped; single quotes are escaped
/// too, because the whole search string sits in single quotes.
fn quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn left_out_note(left_out: &[Graph], y: u32) -> Value {
    let mut names: Vec<String> =
        left_out.iter().take(NAMED_LEFT_OUT).map(|graph| format!("- {} ({})", graph.title, graph.region)).collect();
    if left_out.len() > NAMED_LEFT_OUT {
        names.push(format!("- and {} more", left_out.len() - NAMED_LEFT_OUT));
    }
    let markdown = format!(
        "## {} graphs are not shown\nCloudWatch allows {MAX_WIDGETS} widgets on one dashboard. Not shown:\n{}",
        left_out.len(),
        names.join("\n")
    );
    json!({"type": "text", "x": 0, "y": y, "width": GRID_WIDTH, "height": GRAPH_HEIGHT, "properties": {"markdown": markdown}})
}

/// Whether two bodies are the same dashboard: equal as JSON, numbers compared by value (a body
/// that went through another JSON writer may spell `8.0` as `8`).
pub fn same_body(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_body(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(key, value)| y.get(key).is_some_and(|other| same_body(value, other)))
        }
        _ => a == b,
    }
}
