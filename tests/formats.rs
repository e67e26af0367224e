//! The output-format parsers (SPEC 8, 8.2) against real programs' output, captured by
//! scripts/capture_format_fixtures.sh into tests/fixtures/formats/, and against the malformed
//! corpus in tests/fixtures/formats/malformed/.
//!
//! The captured output is host-specific (how many disks, CPUs, processes; the load), so these
//! tests check properties that hold on any host: every sample line is accounted for, the types
//! and units the programs are known to give, values that agree with the plugin's own text.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use specialsnowflake::output::counters::{CounterState, raw_entries};
use specialsnowflake::output::nagios::{self, NagiosState};
use specialsnowflake::output::prometheus::{self, Kind, LabelRule, Sample, Scrape, Selection};
use specialsnowflake::output::series_guard::cap_series;
use specialsnowflake::output::{Dimension, Entry, EntryRules, json};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/formats")
}

fn read(relative: &str) -> Vec<u8> {
    let path = fixtures().join(relative);
    std::fs::read(&path).unwrap_or_else(|error| panic!("{}: {error}; run scripts/capture_format_fixtures.sh", path.display()))
}

fn scrape(relative: &str, selection: &Selection) -> Scrape {
    prometheus::parse(&read(relative), false, selection, &EntryRules::default()).unwrap()
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> &'a Sample {
    samples
        .iter()
        .find(|sample| {
            sample.series.name == name
                && labels.iter().all(|(label, value)| sample.series.labels.iter().any(|(l, v)| l == label && v == value))
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

fn dimension_names(entry: &Entry) -> Vec<&str> {
    entry.dimensions.iter().map(|dimension| dimension.name.as_str()).collect()
}

/// Sample lines counted without the parser: not a comment, not blank.
fn sample_lines(text: &str) -> Vec<&str> {
    text.lines().take_while(|line| line.trim() != "# EOF").filter(|line| !line.trim().is_empty() && !line.starts_with('#')).collect()
}

// ---- node_exporter ---------------------------------------------------------------------------

#[test]
fn node_exporter_every_sample_line_is_a_sample() {
    let body = read("prometheus/node_exporter.prom");
    let text = String::from_utf8(body).unwrap();
    let parsed = scrape("prometheus/node_exporter.prom", &Selection::default());
    assert!(parsed.rejections.is_empty(), "{:?}", parsed.rejections);
    let finite = sample_lines(&text)
        .iter()
        .filter(|line| {
            let value = line.rsplit(' ').next().unwrap();
            !matches!(value, "NaN" | "+Inf" | "-Inf")
        })
        .count();
    assert!(finite > 100, "node_exporter always exposes hundreds of series, got {finite}");
    assert_eq!(parsed.samples.len(), finite);
}

#[test]
fn node_exporter_types_and_units() {
    let parsed = scrape("prometheus/node_exporter.prom", &Selection::default());
    let cpu = find(&parsed.samples, "node_cpu_seconds_total", &[("mode", "idle")]);
    assert_eq!((cpu.kind, cpu.entry.unit), (Kind::Cumulative, Some("Seconds")));
    assert_eq!(dimension_names(&cpu.entry), ["cpu", "mode"]);
    let load = find(&parsed.samples, "node_load1", &[]);
    assert_eq!((load.kind, load.entry.unit), (Kind::Gauge, None));
    assert!(load.entry.value >= 0.0);
    let memory = find(&parsed.samples, "node_memory_MemTotal_bytes", &[]);
    assert_eq!((memory.kind, memory.entry.unit), (Kind::Gauge, Some("Bytes")));
    assert!(memory.entry.value > 0.0);
    let forks = find(&parsed.samples, "node_forks_total", &[]);
    assert_eq!((forks.kind, forks.entry.unit), (Kind::Cumulative, Some("Count")));
    // go_gc_duration_seconds is a summary: quantiles are gauges with their label, _sum and
    // _count are cumulative.
    let quantile = find(&parsed.samples, "go_gc_duration_seconds", &[("quantile", "0.5")]);
    assert_eq!((quantile.kind, quantile.entry.unit), (Kind::Gauge, Some("Seconds")));
    assert_eq!(dimension_names(&quantile.entry), ["quantile"]);
    let sum = find(&parsed.samples, "go_gc_duration_seconds_sum", &[]);
    assert_eq!((sum.kind, sum.entry.unit), (Kind::Cumulative, Some("Seconds")));
    let count = find(&parsed.samples, "go_gc_duration_seconds_count", &[]);
    assert_eq!((count.kind, count.entry.unit), (Kind::Cumulative, Some("Count")));
    // An untyped sample (node_exporter's textfile-free hosts still have some) is a gauge.
    let untyped: Vec<_> = parsed.samples.iter().filter(|s| s.series.name.starts_with("node_vmstat_")).collect();
    assert!(!untyped.is_empty() && untyped.iter().all(|s| s.kind == Kind::Gauge));
}

#[test]
fn node_exporter_counters_become_increases_between_two_scrapes() {
    let first = scrape("prometheus/node_exporter.prom", &Selection::default());
    let second = scrape("prometheus/node_exporter.second.prom", &Selection::default());
    let mut state = CounterState::default();
    let first_entries = state.entries(first.samples.clone());
    let gauges = first.samples.iter().filter(|s| s.kind == Kind::Gauge).count();
    assert_eq!(first_entries.len(), gauges, "the first run publishes gauges only");
    let cumulative_first = first.samples.iter().filter(|s| s.kind == Kind::Cumulative).count();
    assert!(cumulative_first > 50 && state.len() == cumulative_first);

    let second_entries = state.entries(second.samples.clone());
    let before: HashMap<_, _> = first.samples.iter().map(|s| (s.series.clone(), s.entry.value)).collect();
    let mut checked = 0;
    for sample in second.samples.iter().filter(|s| s.kind == Kind::Cumulative) {
        let Some(previous) = before.get(&sample.series) else { continue };
        let expected = if sample.entry.value < *previous { sample.entry.value } else { sample.entry.value - previous };
        let published = second_entries
            .iter()
            .find(|e| e.name == sample.entry.name && e.dimensions == sample.entry.dimensions)
            .unwrap_or_else(|| panic!("no increase for {:?}", sample.series));
        assert_eq!(published.value, expected, "{:?}", sample.series);
        assert!(published.value >= 0.0);
        checked += 1;
    }
    assert!(checked > 50, "only {checked} counters were in both scrapes");
    // A second passed between the scrapes, so the CPUs' time (in any mode) grew.
    let cpu_time: f64 = second_entries.iter().filter(|e| e.name == "node_cpu_seconds_total").map(|e| e.value).sum();
    assert!(cpu_time > 0.0, "{cpu_time}");
}

#[test]
fn node_exporter_selection_merges_cpus_per_mode() {
    let selection = Selection::new(&["node_cpu_seconds_total".into()], &[], LabelRule::Keep(vec!["mode".into()]), false).unwrap();
    let first = scrape("prometheus/node_exporter.prom", &selection);
    let second = scrape("prometheus/node_exporter.second.prom", &selection);
    assert!(first.samples.iter().all(|s| s.series.name == "node_cpu_seconds_total"));
    let mut state = CounterState::default();
    assert!(state.entries(first.samples.clone()).is_empty());
    let entries = state.entries(second.samples.clone());
    let modes: BTreeMap<&str, f64> = entries.iter().map(|e| (e.dimensions[0].value.as_str(), e.value)).collect();
    assert_eq!(entries.len(), modes.len(), "one datapoint per mode");
    assert!(modes.contains_key("idle") && modes.contains_key("user") && modes.contains_key("system"));
    // The idle increase is the sum over every CPU of that CPU's own increase.
    let mut idle = 0.0;
    for sample in second.samples.iter().filter(|s| s.series.labels.contains(&("mode".into(), "idle".into()))) {
        let before = first.samples.iter().find(|s| s.series == sample.series).unwrap();
        idle += sample.entry.value - before.entry.value;
    }
    assert!((modes["idle"] - idle).abs() < 1e-6, "{} vs {idle}", modes["idle"]);
    let raw = raw_entries(second.samples);
    assert_eq!(raw.len(), modes.len());
}

#[test]
fn node_exporter_exclusion_and_the_series_guard() {
    let selection = Selection::new(&[], &["go_.*".into(), "process_.*".into()], LabelRule::All, false).unwrap();
    let parsed = scrape("prometheus/node_exporter.prom", &selection);
    assert!(parsed.samples.iter().all(|s| !s.series.name.starts_with("go_") && !s.series.name.starts_with("process_")));
    assert!(parsed.samples.iter().any(|s| s.series.name.starts_with("node_")));
    let entries = raw_entries(parsed.samples);
    let total = entries.len();
    let guarded = cap_series(entries.clone(), 200);
    assert_eq!((guarded.series, guarded.dropped_series), (200, total - 200));
    let mut reversed = entries;
    reversed.reverse();
    let mut kept: Vec<_> = cap_series(reversed, 200).entries.into_iter().map(|e| (e.name, e.dimensions)).collect();
    let mut expected: Vec<_> = guarded.entries.into_iter().map(|e| (e.name, e.dimensions)).collect();
    kept.sort();
    expected.sort();
    assert_eq!(kept, expected, "the same series survive whatever the order");
}

// ---- nginx exporter --------------------------------------------------------------------------

#[test]
fn nginx_exporter_reads_stub_status() {
    let first = scrape("prometheus/nginx_exporter.prom", &Selection::default());
    assert!(first.rejections.is_empty(), "{:?}", first.rejections);
    for (name, kind) in [
        ("nginx_connections_accepted", Kind::Cumulative),
        ("nginx_connections_handled", Kind::Cumulative),
        ("nginx_http_requests_total", Kind::Cumulative),
        ("nginx_connections_active", Kind::Gauge),
        ("nginx_connections_waiting", Kind::Gauge),
        ("nginx_up", Kind::Gauge),
    ] {
        let sample = find(&first.samples, name, &[]);
        assert_eq!(sample.kind, kind, "{name}");
    }
    assert_eq!(find(&first.samples, "nginx_up", &[]).entry.value, 1.0);
    assert_eq!(find(&first.samples, "nginx_http_requests_total", &[]).entry.unit, Some("Count"));
    let build = find(&first.samples, "nginxexporter_build_info", &[]);
    assert!(dimension_names(&build.entry).contains(&"version"));

    let second = scrape("prometheus/nginx_exporter.second.prom", &Selection::default());
    let mut state = CounterState::default();
    state.entries(first.samples);
    let entries = state.entries(second.samples);
    let requests = entries.iter().find(|e| e.name == "nginx_http_requests_total").unwrap();
    assert!(requests.value >= 3.0, "the capture made 3 requests between the scrapes: {}", requests.value);
}

// ---- the Prometheus Python client: OpenMetrics and 0.0.4 ------------------------------------

#[test]
fn openmetrics_from_the_reference_client() {
    let parsed = scrape("prometheus/python_client.openmetrics", &Selection::default());
    // The one rejection is real: a label value with a newline cannot be a CloudWatch dimension.
    assert_eq!(parsed.rejections.len(), 1, "{:?}", parsed.rejections);
    assert!(parsed.rejections[0].entry.contains("app_temperature_celsius"));
    assert!(parsed.rejections[0].reason.contains("holds '\\n'"), "{}", parsed.rejections[0].reason);
    assert!(parsed.samples.iter().all(|s| !s.series.name.ends_with("_created")), "_created is ignored");
    assert!(parsed.samples.iter().all(|s| !s.series.name.ends_with("_bucket")), "buckets only when asked");
    assert!(parsed.samples.iter().all(|s| s.series.name != "app_broken"), "NaN is skipped");

    let escaped = find(&parsed.samples, "app_requests_total", &[("method", "POST")]);
    assert_eq!(escaped.entry.dimensions[1], Dimension::new("path", "/say \"hi\"\\now"));
    assert_eq!((escaped.kind, escaped.entry.value, escaped.entry.unit), (Kind::Cumulative, 2.0, Some("Count")));
    let with_exemplar = find(&parsed.samples, "app_sent_bytes_total", &[]);
    assert_eq!((with_exemplar.entry.value, with_exemplar.entry.unit), (4096.0, Some("Bytes")));
    let gauge = find(&parsed.samples, "app_temperature_celsius", &[("room", "kitchen")]);
    assert_eq!((gauge.kind, gauge.entry.value, gauge.entry.unit), (Kind::Gauge, 21.5, None));
    let latency_sum = find(&parsed.samples, "app_latency_seconds_sum", &[]);
    assert_eq!((latency_sum.kind, latency_sum.entry.value, latency_sum.entry.unit), (Kind::Cumulative, 3.25, Some("Seconds")));
    let latency_count = find(&parsed.samples, "app_latency_seconds_count", &[]);
    assert_eq!((latency_count.kind, latency_count.entry.value, latency_count.entry.unit), (Kind::Cumulative, 5.0, Some("Count")));
    let payload_sum = find(&parsed.samples, "app_payload_bytes_sum", &[]);
    assert_eq!(payload_sum.entry.unit, Some("Bytes"));
    let info = find(&parsed.samples, "app_build_info", &[("version", "1.2.3")]);
    assert_eq!((info.kind, info.entry.value), (Kind::Gauge, 1.0));
    let running = find(&parsed.samples, "app_state", &[("app_state", "running")]);
    assert_eq!((running.kind, running.entry.value), (Kind::Gauge, 1.0));
}

#[test]
fn histogram_buckets_when_asked_keep_le_whatever_the_label_rule() {
    let selection = Selection::new(&["app_latency_seconds_.*".into()], &[], LabelRule::Keep(vec![]), true).unwrap();
    let parsed = scrape("prometheus/python_client.openmetrics", &selection);
    let buckets: Vec<_> = parsed.samples.iter().filter(|s| s.series.name == "app_latency_seconds_bucket").collect();
    let bounds: Vec<_> = buckets.iter().map(|s| (s.entry.dimensions[0].value.as_str(), s.entry.value)).collect();
    assert_eq!(bounds, [("0.1", 1.0), ("0.5", 3.0), ("1.0", 4.0), ("+Inf", 5.0)]);
    assert!(buckets.iter().all(|s| s.kind == Kind::Cumulative && dimension_names(&s.entry) == ["le"]));
}

#[test]
fn the_text_format_of_the_same_registry_reads_alike() {
    let parsed = scrape("prometheus/python_client.prom", &Selection::default());
    assert_eq!(parsed.rejections.len(), 1, "{:?}", parsed.rejections);
    let counter = find(&parsed.samples, "app_requests_total", &[("method", "GET")]);
    assert_eq!((counter.kind, counter.entry.value), (Kind::Cumulative, 7.0));
    // In 0.0.4 the client declares its _created samples as gauges of their own: they are read as
    // declared (OpenMetrics' _created rule is about counter families' own samples).
    let created = find(&parsed.samples, "app_requests_created", &[("method", "GET")]);
    assert_eq!(created.kind, Kind::Gauge);
    let openmetrics = scrape("prometheus/python_client.openmetrics", &Selection::default());
    for name in ["app_requests_total", "app_sent_bytes_total", "app_latency_seconds_sum", "app_payload_bytes_count", "app_queue_bytes"] {
        let text = parsed.samples.iter().filter(|s| s.series.name == name).map(|s| (s.kind, s.entry.value)).collect::<Vec<_>>();
        let om = openmetrics.samples.iter().filter(|s| s.series.name == name).map(|s| (s.kind, s.entry.value)).collect::<Vec<_>>();
        assert_eq!(text, om, "{name}");
    }
}

// ---- Nagios plugins --------------------------------------------------------------------------

struct PluginRun {
    name: String,
    stdout: Vec<u8>,
    status: i32,
}

fn plugin_runs() -> Vec<PluginRun> {
    let directory = fixtures().join("nagios");
    let mut runs: Vec<PluginRun> = std::fs::read_dir(&directory)
        .unwrap_or_else(|error| panic!("{}: {error}; run scripts/capture_format_fixtures.sh", directory.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "out"))
        .map(|path| {
            let status = std::fs::read_to_string(path.with_extension("status")).unwrap().trim().parse().unwrap();
            PluginRun { name: path.file_stem().unwrap().to_string_lossy().into_owned(), stdout: std::fs::read(&path).unwrap(), status }
        })
        .collect();
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(runs.len() >= 10, "expected the captured plugin runs, found {}", runs.len());
    runs
}

fn plugin(name: &str) -> nagios::PluginOutput {
    let run = plugin_runs().into_iter().find(|run| run.name == name).unwrap_or_else(|| panic!("no fixture {name}"));
    nagios::parse(&run.stdout, Some(run.status), false, &EntryRules::default()).unwrap()
}

fn perfdata(output: &nagios::PluginOutput) -> Vec<(&str, f64, Option<&'static str>)> {
    output.parsed.entries.iter().filter(|e| e.name != "NagiosState").map(|e| (e.name.as_str(), e.value, e.unit)).collect()
}

/// The numbers after `marker` in `text`, as the plugin wrote them for people.
fn numbers_after(text: &str, marker: &str) -> Vec<f64> {
    let rest = &text[text.find(marker).unwrap_or_else(|| panic!("{marker:?} not in {text:?}")) + marker.len()..];
    rest.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter(|word| !word.is_empty()).map(|word| word.parse().unwrap()).collect()
}

#[test]
fn every_captured_plugin_run_reads_cleanly_with_its_state() {
    for run in plugin_runs() {
        let output = nagios::parse(&run.stdout, Some(run.status), false, &EntryRules::default())
            .unwrap_or_else(|error| panic!("{}: {error}", run.name));
        assert!(output.parsed.rejections.is_empty(), "{}: {:?}", run.name, output.parsed.rejections);
        assert_eq!(output.state.value(), f64::from(run.status), "{}", run.name);
        let state = output.parsed.entries.last().unwrap();
        assert_eq!((state.name.as_str(), state.value, state.unit), ("NagiosState", f64::from(run.status), Some("None")));
        let first_line = String::from_utf8_lossy(&run.stdout).lines().next().unwrap_or("").to_string();
        assert!(first_line.starts_with(&output.summary), "{}: {:?}", run.name, output.summary);
        assert!(!output.summary.contains('|'));
    }
}

#[test]
fn check_load_perfdata_matches_its_text() {
    for (name, state) in [("check_load_ok", NagiosState::Ok), ("check_load_critical", NagiosState::Critical)] {
        let output = plugin(name);
        assert_eq!(output.state, state);
        let shown = numbers_after(&output.summary, "total load average:");
        let read = perfdata(&output);
        let names: Vec<_> = read.iter().map(|(name, _, _)| *name).collect();
        assert_eq!(names, ["load1", "load5", "load15"]);
        for ((_, value, unit), shown) in read.iter().zip(&shown) {
            assert_eq!((*value, *unit), (*shown, None), "{name}");
        }
    }
    let per_cpu = plugin("check_load_per_cpu");
    let names: Vec<_> = perfdata(&per_cpu).iter().map(|(name, _, _)| *name).collect();
    assert_eq!(names, ["load1", "scaled_load1", "load5", "scaled_load5", "load15", "scaled_load15"]);
}

#[test]
fn check_disk_perfdata_is_bytes_per_mount() {
    let root = plugin("check_disk_root");
    let read = perfdata(&root);
    assert_eq!(read.len(), 1);
    assert_eq!((read[0].0, read[0].2), ("/", Some("Bytes")));
    assert!(read[0].1 > 0.0, "the root filesystem holds something");
    let two = plugin("check_disk_two");
    let names: Vec<_> = perfdata(&two).iter().map(|(name, _, unit)| (*name, *unit)).collect();
    assert_eq!(names, [("/", Some("Bytes")), ("/dev/shm", Some("Bytes"))]);
    assert_eq!(plugin("check_disk_critical").state, NagiosState::Critical);
    assert_eq!(perfdata(&plugin("check_disk_gigabytes"))[0].0, "/");
}

#[test]
fn count_plugins_agree_with_their_text() {
    let procs = plugin("check_procs");
    assert_eq!(perfdata(&procs), [("procs", numbers_after(&procs.summary, "PROCS OK:")[0], None)]);
    assert_eq!(plugin("check_procs_metric").state, NagiosState::Warning);
    let users = plugin("check_users");
    assert_eq!(perfdata(&users), [("users", numbers_after(&users.summary, "USERS OK -")[0], None)]);
    let swap = plugin("check_swap");
    assert_eq!(perfdata(&swap).iter().map(|(name, _, unit)| (*name, *unit)).collect::<Vec<_>>(), [("swap", Some("Bytes"))]);
}

#[test]
fn check_dummy_states_and_text() {
    for (name, state, text) in [
        ("check_dummy_ok", NagiosState::Ok, "OK: all is well"),
        ("check_dummy_warning", NagiosState::Warning, "WARNING: a bit warm"),
        ("check_dummy_critical", NagiosState::Critical, "CRITICAL: on fire"),
        ("check_dummy_unknown", NagiosState::Unknown, "UNKNOWN: cannot tell"),
        ("check_dummy_bad_state", NagiosState::Unknown, "UNKNOWN: Status 7 is not a supported error state"),
    ] {
        let output = plugin(name);
        assert_eq!((output.state, output.summary.as_str()), (state, text), "{name}");
        assert!(perfdata(&output).is_empty());
    }
}

// ---- the malformed corpus --------------------------------------------------------------------

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    #[serde(default)]
    published: Vec<String>,
    #[serde(default)]
    rejected: Vec<(String, String)>,
    unreadable: Option<String>,
}

#[test]
fn malformed_corpus_rejects_exactly_the_bad_entries() {
    let directory = fixtures().join("malformed");
    let expectations: BTreeMap<String, Expected> =
        serde_json::from_slice(&std::fs::read(directory.join("expected.json")).unwrap()).unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&directory)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "expected.json" && name != "README.md")
        .collect();
    files.sort();
    assert_eq!(files, expectations.keys().cloned().collect::<Vec<_>>(), "every corpus file has expectations and every expectation a file");
    let rules = EntryRules::default();
    for (file, expected) in &expectations {
        let input = std::fs::read(directory.join(file)).unwrap();
        let result = match file.rsplit('.').next().unwrap() {
            "json" => json::parse(&input, false, &rules),
            "nagios" => nagios::parse(&input, Some(0), false, &rules).map(|output| output.parsed),
            "prom" => prometheus::parse(&input, false, &Selection::default(), &rules).map(|scrape| specialsnowflake::output::Parsed {
                entries: scrape.samples.into_iter().map(|sample| sample.entry).collect(),
                rejections: scrape.rejections,
            }),
            other => panic!("{file}: no parser for .{other}"),
        };
        match (&expected.unreadable, result) {
            (Some(reason), Err(error)) => assert!(error.0.contains(reason.as_str()), "{file}: {error}"),
            (Some(_), Ok(parsed)) => panic!("{file}: expected the run to fail, got {parsed:?}"),
            (None, Err(error)) => panic!("{file}: {error}"),
            (None, Ok(parsed)) => {
                let published: Vec<_> = parsed.entries.iter().map(|entry| entry.name.clone()).collect();
                assert_eq!(published, expected.published, "{file}: published");
                let rejected: Vec<_> = parsed.rejections.iter().map(|r| r.entry.clone()).collect();
                let expected_entries: Vec<_> = expected.rejected.iter().map(|(entry, _)| entry.clone()).collect();
                assert_eq!(rejected, expected_entries, "{file}: rejected entries");
                for (rejection, (_, reason)) in parsed.rejections.iter().zip(&expected.rejected) {
                    assert!(
                        rejection.reason.contains(reason.as_str()),
                        "{file}: {}: {:?} lacks {reason:?}",
                        rejection.entry,
                        rejection.reason
                    );
                }
            }
        }
    }
}

// ---- damaged real output never panics and never yields an unpublishable entry ------------------

/// What every accepted entry must be for CloudWatch to take it.
fn assert_publishable(entry: &Entry, what: &str) {
    let chars = entry.name.chars().count();
    assert!(chars > 0 && chars <= 255, "{what}: name {:?}", entry.name);
    assert!(entry.value.is_finite() && entry.value.abs() <= 2f64.powi(360), "{what}: value {}", entry.value);
    assert!(EntryRules::default().dimensions(&entry.dimensions).is_ok(), "{what}: dimensions {:?}", entry.dimensions);
}

/// `input` with a few random cuts, insertions of characters the grammars care about, and
/// duplicated slices.
fn damaged(input: &[u8], rng: &mut fastrand::Rng) -> Vec<u8> {
    const SPECIAL: &[u8] = b"{}\"=;|'\n\r\t #,\\:@~.-+eE0123456789\xff\xc3";
    let mut bytes = input.to_vec();
    for _ in 0..rng.usize(1..=6) {
        let at = rng.usize(0..=bytes.len());
        match rng.u8(0..3) {
            0 => {
                let end = (at + rng.usize(1..=8)).min(bytes.len());
                bytes.drain(at..end);
            }
            1 => bytes.insert(at, SPECIAL[rng.usize(0..SPECIAL.len())]),
            _ => {
                let end = (at + rng.usize(1..=40)).min(bytes.len());
                let slice = bytes[at..end].to_vec();
                bytes.splice(at..at, slice);
            }
        }
    }
    bytes
}

#[test]
fn damaged_output_never_panics_and_only_publishable_entries_pass() {
    let mut rng = fastrand::Rng::with_seed(13);
    let rules = EntryRules::default();
    let buckets = Selection::new(&[], &[], LabelRule::All, true).unwrap();
    let mut expositions = vec![read("prometheus/python_client.openmetrics"), read("prometheus/nginx_exporter.prom")];
    let node = String::from_utf8(read("prometheus/node_exporter.prom")).unwrap();
    expositions.push(node.lines().take(120).collect::<Vec<_>>().join("\n").into_bytes());
    for exposition in &expositions {
        for round in 0..300 {
            let input = damaged(exposition, &mut rng);
            if let Ok(scrape) = prometheus::parse(&input, false, &buckets, &rules) {
                for sample in &scrape.samples {
                    assert_publishable(&sample.entry, &format!("prometheus round {round}"));
                }
                let mut state = CounterState::default();
                state.entries(scrape.samples.clone());
                state.entries(scrape.samples);
            }
        }
    }
    for run in plugin_runs() {
        for round in 0..100 {
            let input = damaged(&run.stdout, &mut rng);
            let output = nagios::parse(&input, Some(run.status), false, &rules).unwrap();
            assert_eq!(output.parsed.entries.last().unwrap().name, "NagiosState");
            for entry in &output.parsed.entries {
                assert_publishable(entry, &format!("{} round {round}", run.name));
            }
        }
    }
    let directory = fixtures().join("malformed");
    for file in ["json-entry-shapes.json", "json-bad-unit.json", "json-out-of-range.json", "json-string-value.json"] {
        let document = std::fs::read(directory.join(file)).unwrap();
        for round in 0..300 {
            if let Ok(parsed) = json::parse(&damaged(&document, &mut rng), false, &rules) {
                for entry in &parsed.entries {
                    assert_publishable(entry, &format!("{file} round {round}"));
                }
            }
        }
    }
}
