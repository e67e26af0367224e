//! Validation of the alarm kinds of SPEC 10 through `parse_flake`, as an operator meets it: what
//! each declaration becomes, and how each bad one is rejected with its field while the flake's
//! other alarms go on.

use std::path::Path;

use serde_json::{Value, json};

use super::model::{Flake, FlakeKind, Watch};
use super::problem::Problem;
use super::{Context, parse_flake};
use crate::placeholders::Facts;
use crate::schedule::Schedule;

struct Host;

impl Facts for Host {
    fn hostname(&self) -> Result<String, String> {
        Ok("web-1".to_string())
    }
    fn env(&self, _: &str) -> Option<String> {
        None
    }
    fn instance(&self, name: &str) -> Result<String, String> {
        match name {
            "InstanceId" => Ok("i-0abc".to_string()),
            "Region" => Ok("eu-west-1".to_string()),
            _ => Err("not known".to_string()),
        }
    }
}

fn parse(value: Value) -> (Option<Flake>, Vec<Problem>) {
    let context = Context { default_zone: chrono_tz::UTC, facts: &Host };
    parse_flake(Path::new("f.json"), &value.to_string(), &context)
}

fn host_alarms(alarms: Value) -> Value {
    json!({"flakeName": "host", "flakeType": "alarms", "flakeAlarms": alarms})
}

fn errors(problems: &[Problem]) -> Vec<String> {
    problems.iter().filter(|problem| problem.is_error()).map(ToString::to_string).collect()
}

#[test]
fn an_alarms_flake_declares_host_alarms_on_aws_metrics_with_placeholders() {
    let (flake, problems) = parse(host_alarms(json!([
        {"alarmName": "status", "alarmNamespace": "AWS/EC2", "alarmMetricName": "StatusCheckFailed_System",
         "alarmDimensions": {"InstanceId": "${aws:InstanceId}"}, "alarmStatistic": "Maximum",
         "alarmThreshold": 0, "alarmOperator": ">", "alarmPeriods": 2,
         "alarmEndpoints": {"alarm": "arn:aws:automate:${aws:Region}:ec2:recover"}}
    ])));
    assert_eq!(errors(&problems), Vec::<String>::new());
    let flake = flake.expect("valid");
    assert_eq!((flake.kind, &flake.schedule, flake.metric.is_none()), (FlakeKind::Alarms, &Schedule::Never, true));
    let alarm = &flake.alarms[0];
    assert_eq!(alarm.name, "FL-host-status");
    assert_eq!(alarm.alarm_actions, ["arn:aws:automate:eu-west-1:ec2:recover"]);
    let Watch::Metric(metric) = &alarm.watch else { panic!("{:?}", alarm.watch) };
    assert_eq!((metric.namespace.as_str(), metric.metric_name.as_str()), ("AWS/EC2", "StatusCheckFailed_System"));
    assert_eq!(metric.dimensions, [("InstanceId".to_string(), "i-0abc".to_string())].into());
}

#[test]
fn alarm_dimensions_add_to_the_flakes_own_and_replace_them_elsewhere() {
    let (flake, problems) = parse(json!({
        "flakeName": "web", "flakeCronstring": "* * * * *", "flakeCommand": "echo 1", "flakeMetricNamespace": "App",
        "flakeDimensions": {"Host": "${hostname}"},
        "flakeAlarms": [
            {"alarmName": "own", "alarmMetricName": "errors", "alarmDimensions": {"Code": "500"}, "alarmThreshold": 1, "alarmOperator": ">"},
            {"alarmName": "other", "alarmNamespace": "AWS/ELB", "alarmMetricName": "Latency", "alarmDimensions": {"LoadBalancerName": "lb"}, "alarmThreshold": 1, "alarmOperator": ">"},
            {"alarmName": "plain", "alarmThreshold": 1, "alarmOperator": ">"}
        ]
    }));
    assert_eq!(errors(&problems), Vec::<String>::new());
    let dims: Vec<String> = flake
        .unwrap()
        .alarms
        .iter()
        .map(|alarm| match &alarm.watch {
            Watch::Metric(metric) => format!("{} {} {:?}", metric.namespace, metric.metric_name, metric.dimensions),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        dims,
        [
            "App errors {\"Code\": \"500\", \"Host\": \"web-1\"}",
            "AWS/ELB Latency {\"LoadBalancerName\": \"lb\"}",
            "App web {\"Host\": \"web-1\"}"
        ]
    );
}

#[test]
fn math_band_and_composite_alarms_are_understood() {
    let (flake, problems) = parse(host_alarms(json!([
        {"alarmName": "error-ratio", "alarmExpression": "100 * errors / requests", "alarmThreshold": 5, "alarmOperator": ">",
         "alarmStatistic": "Sum", "alarmPeriodLength": 300,
         "alarmMetrics": {"errors": {"namespace": "App", "metricName": "Errors"},
                          "requests": {"namespace": "App", "metricName": "Requests", "statistic": "SampleCount", "period": 60}}},
        {"alarmName": "cpu-band", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmAnomalyBand": 2, "alarmOperator": "above"},
        {"alarmName": "page", "alarmRule": "ALARM(error-ratio) AND NOT ALARM(\"FL-other-maintenance\")"}
    ])));
    assert_eq!(errors(&problems), Vec::<String>::new());
    let alarms = flake.unwrap().alarms;
    let Watch::Math { expression, metrics } = &alarms[0].watch else { panic!() };
    assert_eq!(expression, "100 * errors / requests");
    assert_eq!(
        metrics.iter().map(|m| (m.id.as_str(), m.statistic.as_str(), m.period)).collect::<Vec<_>>(),
        [("errors", "Sum", 300), ("requests", "SampleCount", 60)]
    );
    assert!(matches!(&alarms[1].watch, Watch::AnomalyBand { width, .. } if *width == 2.0));
    assert_eq!(alarms[1].comparison, "GreaterThanUpperThreshold");
    let Watch::Composite { rule } = &alarms[2].watch else { panic!() };
    assert_eq!(rule, "ALARM(\"FL-host-error-ratio\") AND NOT ALARM(\"FL-other-maintenance\")");
}

/// Every bad declaration of the corpus: its own field and message, while the good alarm beside
/// it is kept and the flake stays valid.
#[test]
fn each_bad_declaration_is_rejected_with_its_field_and_the_rest_goes_on() {
    let eleven: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("m{i}"), json!({"namespace": "App", "metricName": format!("M{i}")}))).collect();
    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"alarmName": "bad", "alarmRule": "ALARM(cpu-hgh)"}),
            "flakeAlarms[1].alarmRule",
            "alarm \"bad\": names \"cpu-hgh\", which this flake does not declare",
        ),
        (json!({"alarmName": "bad", "alarmRule": "ALARM(bad)"}), "flakeAlarms[1].alarmRule", "cycle: bad -> bad"),
        (json!({"alarmName": "bad", "alarmRule": "ALARM(cpu) AND"}), "flakeAlarms[1].alarmRule", "is not a valid rule"),
        (
            json!({"alarmName": "bad", "alarmExpression": "m0 + m1", "alarmThreshold": 1, "alarmOperator": ">", "alarmMetrics": eleven}),
            "flakeAlarms[1].alarmMetrics",
            "has 11 metrics; a metric-math alarm uses 1 to 10",
        ),
        (
            json!({"alarmName": "bad", "alarmExpression": "a / b", "alarmThreshold": 1, "alarmOperator": ">", "alarmMetrics": {"x": {"namespace": "App", "metricName": "X"}}}),
            "flakeAlarms[1].alarmExpression",
            "uses none of the metrics",
        ),
        (
            json!({"alarmName": "bad", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmAnomalyBand": 2, "alarmOperator": "outside", "alarmThreshold": 80}),
            "flakeAlarms[1].alarmThreshold",
            "does not apply to an anomaly-band alarm",
        ),
        (
            json!({"alarmName": "bad", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmAnomalyBand": 2, "alarmOperator": ">"}),
            "flakeAlarms[1].alarmOperator",
            "not an anomaly-band operator",
        ),
        (
            json!({"alarmName": "bad", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 1, "alarmOperator": ">", "alarmEndpoints": {"alarm": ["arn:aws:sns:eu-west-1:1:ops", "ops-topic"]}}),
            "flakeAlarms[1].alarmEndpoints.alarm",
            "\"ops-topic\" is not an action ARN",
        ),
        (
            json!({"alarmName": "bad", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 1, "alarmOperator": ">", "alarmEndpoints": {"alarm": "arn:aws:automate:${aws:Region}:ec2:reset"}}),
            "flakeAlarms[1].alarmEndpoints.alarm",
            "is not an EC2 action",
        ),
        (
            json!({"alarmName": "bad", "alarmMetricName": "CPUUtilization", "alarmThreshold": 1, "alarmOperator": ">"}),
            "flakeAlarms[1].alarmNamespace",
            "is required: this flake publishes no metric",
        ),
        (
            json!({"alarmName": "bad", "alarmRule": "ALARM(cpu)", "alarmThreshold": 1}),
            "flakeAlarms[1].alarmThreshold",
            "does not apply to a composite alarm",
        ),
    ];
    for (bad, field, message) in cases {
        let good = json!({"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 90, "alarmOperator": ">"});
        let (flake, problems) = parse(host_alarms(json!([good, bad])));
        let errors = errors(&problems);
        assert!(
            errors.iter().any(|error| error.starts_with(&format!("{field}: ")) && error.contains(message)),
            "{field} {message}: {errors:?}"
        );
        let flake = flake.unwrap_or_else(|| panic!("the flake goes on beside {field}: {errors:?}"));
        assert_eq!(flake.alarms.iter().map(|alarm| alarm.name.as_str()).collect::<Vec<_>>(), ["FL-host-cpu"], "{field}");
    }
}

#[test]
fn a_cycle_through_two_composites_names_both() {
    let (flake, problems) = parse(host_alarms(json!([
        {"alarmName": "a", "alarmRule": "ALARM(b)"},
        {"alarmName": "b", "alarmRule": "ALARM(a) OR ALARM(c)"},
        {"alarmName": "c", "alarmRule": "TRUE"}
    ])));
    let errors = errors(&problems);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|error| error.contains("cycle: a -> b -> a")), "{errors:?}");
    assert_eq!(flake.unwrap().alarms.len(), 1);
}

#[test]
fn removing_a_child_the_composite_names_is_refused() {
    let (_, problems) = parse(host_alarms(json!([
        {"alarmName": "mute-cpu", "alarmRule": "ALARM(cpu) AND NOT ALARM(maintenance)"},
        {"alarmName": "maintenance", "alarmNamespace": "App", "alarmMetricName": "Maintenance", "alarmThreshold": 0, "alarmOperator": ">"}
    ])));
    let errors = errors(&problems);
    assert_eq!(
        errors,
        [
            "flakeAlarms[0].alarmRule: alarm \"mute-cpu\": names \"cpu\", which this flake does not declare (it declares: maintenance, mute-cpu); a bare name is an alarmName of this flake, a full name starts with FL-"
        ]
    );
}

#[test]
fn an_alarms_flake_has_no_command_or_schedule() {
    let (flake, problems) =
        parse(json!({"flakeName": "host", "flakeType": "alarms", "flakeCommand": "echo 1", "flakeCronstring": "* * * * *"}));
    assert!(flake.is_none());
    let errors = errors(&problems);
    assert!(errors.iter().any(|e| e.starts_with("flakeCommand: an alarms flake runs nothing")), "{errors:?}");
    assert!(errors.iter().any(|e| e.starts_with("flakeCronstring: an alarms flake runs nothing")), "{errors:?}");
}

#[test]
fn a_composite_naming_an_alarm_left_out_says_to_fix_that_alarm_first() {
    let (flake, problems) = parse(host_alarms(json!([
        {"alarmName": "mute-cpu", "alarmRule": "ALARM(cpu) AND NOT ALARM(maintenance)"},
        {"alarmName": "cpu", "alarmNamespace": "AWS/EC2", "alarmMetricName": "CPUUtilization", "alarmThreshold": 90, "alarmOperator": "=>"},
        {"alarmName": "maintenance", "alarmNamespace": "App", "alarmMetricName": "Maintenance", "alarmThreshold": 0, "alarmOperator": ">"}
    ])));
    let errors = errors(&problems);
    assert!(errors.iter().any(|error| error.starts_with("flakeAlarms[1].alarmOperator: ")), "{errors:?}");
    assert!(
        errors.iter().any(|error| error.contains("alarm \"mute-cpu\": names \"cpu\", which is rejected above; fix that alarm first")),
        "{errors:?}"
    );
    let names: Vec<String> = flake.expect("the flake goes on").alarms.into_iter().map(|alarm| alarm.name).collect();
    assert_eq!(names, ["FL-host-maintenance"]);
}
