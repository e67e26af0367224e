//! Placeholders in dimension values and alarm names: `${hostname}`, `${env:NAME}` and the EC2
//! instance facts `${aws:InstanceId}` and friends.
//!
//! Instance facts come from the instance metadata service (IMDSv2) through the AWS SDK's own
//! client, so `AWS_EC2_METADATA_SERVICE_ENDPOINT` works as operators expect. They are read once,
//! and only when some flake uses them: a laptop running `snowflake check` never waits on IMDS.

use std::collections::BTreeMap;
use std::time::Duration;

/// The instance facts a flake may refer to, and where IMDS keeps each.
const INSTANCE_FACTS: [(&str, &str); 5] = [
    ("InstanceId", "/latest/meta-data/instance-id"),
    ("InstanceType", "/latest/meta-data/instance-type"),
    ("Region", "/latest/meta-data/placement/region"),
    ("AvailabilityZone", "/latest/meta-data/placement/availability-zone"),
    ("ImageId", "/latest/meta-data/ami-id"),
];

/// Where placeholder values come from; the daemon uses [`HostFacts`], tests may use their own.
pub trait Facts {
    fn hostname(&self) -> Result<String, String>;
    fn env(&self, name: &str) -> Option<String>;
    fn instance(&self, name: &str) -> Result<String, String>;
    /// True when files are judged for wherever they will run (`snowflake check` without
    /// `--resolve`): a placeholder this host cannot resolve then expands to a stand-in and is
    /// reported as a warning, not an error (SPEC 18).
    fn stand_ins(&self) -> bool {
        false
    }
}

/// Facts of the host the daemon runs on.
#[derive(Debug, Clone)]
pub struct HostFacts {
    hostname: Result<String, String>,
    /// `None` until fetched: no flake needed them yet.
    instance: Option<Result<BTreeMap<String, String>, String>>,
    /// See [`Facts::stand_ins`].
    stand_ins: bool,
}

impl HostFacts {
    /// Hostname and environment only; `${aws:...}` placeholders report that facts were not read.
    pub fn local() -> Self {
        let hostname = nix::unistd::gethostname()
            .map_err(|error| format!("the hostname cannot be read: {error}"))
            .and_then(|name| name.into_string().map_err(|_| "the hostname is not valid UTF-8".to_string()));
        HostFacts { hostname, instance: None, stand_ins: false }
    }

    /// Judges files for wherever they will run: what this host cannot resolve is a warning.
    pub fn with_stand_ins(self) -> Self {
        HostFacts { stand_ins: true, ..self }
    }

    /// Reads the instance facts from IMDS if they have not been read yet.
    pub async fn fetch_instance_facts(&mut self) {
        if self.instance.is_none() {
            self.instance = Some(read_instance_facts().await);
        }
    }
}

impl Facts for HostFacts {
    fn hostname(&self) -> Result<String, String> {
        self.hostname.clone()
    }

    fn env(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    fn instance(&self, name: &str) -> Result<String, String> {
        match &self.instance {
            None => Err("instance facts were not read".to_string()),
            Some(Err(reason)) => Err(reason.clone()),
            Some(Ok(facts)) => facts.get(name).cloned().ok_or_else(|| format!("IMDS has no {name}")),
        }
    }

    fn stand_ins(&self) -> bool {
        self.stand_ins
    }
}

async fn read_instance_facts() -> Result<BTreeMap<String, String>, String> {
    if std::env::var("AWS_EC2_METADATA_DISABLED").is_ok_and(|value| value.eq_ignore_ascii_case("true")) {
        return Err("the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED=true)".to_string());
    }
    // Short timeouts: off EC2 the endpoint does not answer at all, and loading flakes must not hang.
    let client = aws_config::imds::Client::builder()
        .connect_timeout(Duration::from_secs(1))
        .read_timeout(Duration::from_secs(2))
        .max_attempts(2)
        .build();
    let mut facts = BTreeMap::new();
    for (name, path) in INSTANCE_FACTS {
        let value = client.get(path).await.map_err(|error| {
            format!("the instance metadata service (IMDSv2) did not answer {path}: {error}; is this an EC2 instance with IMDS enabled?")
        })?;
        facts.insert(name.to_string(), value.as_ref().trim().to_string());
    }
    Ok(facts)
}

/// True if `text` refers to an instance fact, so IMDS must be read before validating it.
pub fn uses_instance_facts(text: &str) -> bool {
    text.contains("${aws:")
}

/// The first placeholder in `text` whose value differs from host to host of one region: the host
/// name and every instance fact but the region (a cluster flake moves between such hosts).
pub fn member_specific_placeholder(text: &str) -> Option<String> {
    std::iter::once("${hostname}".to_string())
        .chain(INSTANCE_FACTS.iter().filter(|(name, _)| *name != "Region").map(|(name, _)| format!("${{aws:{name}}}")))
        .find(|placeholder| text.contains(placeholder.as_str()))
}

/// Replaces every placeholder in `template`, or says which one failed and why.
pub fn expand(template: &str, facts: &dyn Facts) -> Result<String, String> {
    expand_judged(template, facts).and_then(|expanded| match expanded.unresolved.into_iter().next() {
        Some(reason) => Err(reason),
        None => Ok(expanded.value),
    })
}

/// A template with its placeholders replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expanded {
    pub value: String,
    /// Placeholders this host could not resolve, each with the reason, when `facts` allows
    /// stand-ins ([`Facts::stand_ins`]); `value` holds a stand-in for each.
    pub unresolved: Vec<String>,
}

/// Replaces every placeholder in `template`. A placeholder this host cannot resolve (an unset
/// variable, no instance metadata) is an error, or, when `facts` allows stand-ins, a stand-in
/// value and a note in `unresolved`. An unknown or malformed placeholder is always an error.
pub fn expand_judged(template: &str, facts: &dyn Facts) -> Result<Expanded, String> {
    let mut out = String::with_capacity(template.len());
    let mut unresolved = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("\"{}\" opens a placeholder with ${{ but never closes it with }}", rest));
        };
        let name = &after[..end];
        match resolve(name, facts)? {
            Ok(value) => out.push_str(&value),
            Err(reason) if facts.stand_ins() => {
                out.push_str(&stand_in(name));
                unresolved.push(reason);
            }
            Err(reason) => return Err(reason),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(Expanded { value: out, unresolved })
}

/// The value of the placeholder `name`: the outer error means it is unknown (always wrong), the
/// inner one that this host cannot resolve it (wrong here, maybe right where the file will run).
fn resolve(name: &str, facts: &dyn Facts) -> Result<Result<String, String>, String> {
    let placeholder = format!("${{{name}}}");
    if name == "hostname" {
        return Ok(facts.hostname().map_err(|reason| format!("{placeholder}: {reason}")));
    }
    if let Some(variable) = name.strip_prefix("env:") {
        return Ok(facts
            .env(variable)
            .ok_or_else(|| format!("{placeholder}: environment variable {variable} is not set in the daemon's environment")));
    }
    if let Some(fact) = name.strip_prefix("aws:") {
        if !INSTANCE_FACTS.iter().any(|(known, _)| *known == fact) {
            return Err(format!("{placeholder} is not an instance fact; use one of {}", instance_fact_list()));
        }
        return Ok(facts.instance(fact).map_err(|reason| format!("{placeholder}: {reason}")));
    }
    Err(format!("{placeholder} is not a known placeholder; use ${{hostname}}, ${{env:NAME}} or one of {}", instance_fact_list()))
}

/// What an unresolvable placeholder stands for while judging a file: a value of the right shape
/// (a region looks like a region, so an ARN built from it still parses), or the variable's name.
fn stand_in(name: &str) -> String {
    match name {
        "aws:InstanceId" => "i-00000000000000000".to_string(),
        "aws:InstanceType" => "t3.micro".to_string(),
        "aws:Region" => "us-east-1".to_string(),
        "aws:AvailabilityZone" => "us-east-1a".to_string(),
        "aws:ImageId" => "ami-00000000000000000".to_string(),
        "hostname" => "localhost".to_string(),
        other => other.strip_prefix("env:").unwrap_or(other).to_string(),
    }
}

fn instance_fact_list() -> String {
    INSTANCE_FACTS.iter().map(|(name, _)| format!("${{aws:{name}}}")).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// Fixed facts for tests.
    pub struct FixedFacts;

    impl Facts for FixedFacts {
        fn hostname(&self) -> Result<String, String> {
            Ok("web-1".to_string())
        }
        fn env(&self, name: &str) -> Option<String> {
            (name == "STAGE").then(|| "prod".to_string())
        }
        fn instance(&self, name: &str) -> Result<String, String> {
            match name {
                "InstanceId" => Ok("i-0abc".to_string()),
                "Region" => Ok("eu-west-1".to_string()),
                _ => Err("not on EC2".to_string()),
            }
        }
    }

    #[test]
    fn member_specific_placeholders_are_the_host_name_and_instance_facts_but_the_region() {
        assert_eq!(member_specific_placeholder("Host=${hostname}").as_deref(), Some("${hostname}"));
        assert_eq!(member_specific_placeholder("FL-${aws:AvailabilityZone}-high").as_deref(), Some("${aws:AvailabilityZone}"));
        assert_eq!(member_specific_placeholder("{\"Region\": \"${aws:Region}\", \"Stage\": \"${env:STAGE}\"}"), None);
    }

    #[test]
    fn expands_every_kind() {
        assert_eq!(expand("down-${hostname}", &FixedFacts).unwrap(), "down-web-1");
        assert_eq!(expand("${env:STAGE}/${aws:InstanceId}", &FixedFacts).unwrap(), "prod/i-0abc");
        assert_eq!(expand("no placeholders $ here", &FixedFacts).unwrap(), "no placeholders $ here");
    }

    #[test]
    fn failures_name_the_placeholder_and_reason() {
        let error = expand("${env:NOPE}", &FixedFacts).unwrap_err();
        assert!(error.contains("${env:NOPE}") && error.contains("not set"), "{error}");
        let error = expand("${aws:ImageId}", &FixedFacts).unwrap_err();
        assert!(error.contains("${aws:ImageId}: not on EC2"), "{error}");
        let error = expand("${aws:Colour}", &FixedFacts).unwrap_err();
        assert!(error.contains("not an instance fact"), "{error}");
        let error = expand("${host}", &FixedFacts).unwrap_err();
        assert!(error.contains("not a known placeholder"), "{error}");
        let error = expand("x-${hostname", &FixedFacts).unwrap_err();
        assert!(error.contains("never closes"), "{error}");
    }

    /// FixedFacts judging for wherever the file will run (SPEC 18).
    struct Anywhere;

    impl Facts for Anywhere {
        fn hostname(&self) -> Result<String, String> {
            FixedFacts.hostname()
        }
        fn env(&self, name: &str) -> Option<String> {
            FixedFacts.env(name)
        }
        fn instance(&self, name: &str) -> Result<String, String> {
            FixedFacts.instance(name)
        }
        fn stand_ins(&self) -> bool {
            true
        }
    }

    #[test]
    fn unresolvable_placeholders_are_stand_ins_only_when_judging_anywhere() {
        let expanded = expand_judged("${env:NOPE}/${aws:ImageId}/${aws:InstanceId}", &Anywhere).unwrap();
        assert_eq!(expanded.value, "NOPE/ami-00000000000000000/i-0abc");
        assert_eq!(expanded.unresolved.len(), 2, "{expanded:?}");
        assert!(expanded.unresolved[0].contains("${env:NOPE}") && expanded.unresolved[0].contains("not set"), "{expanded:?}");
        assert!(expanded.unresolved[1].contains("${aws:ImageId}: not on EC2"), "{expanded:?}");
        // Unknown and malformed placeholders stay errors.
        assert!(expand_judged("${aws:Colour}", &Anywhere).unwrap_err().contains("not an instance fact"));
        assert!(expand_judged("${host}", &Anywhere).unwrap_err().contains("not a known placeholder"));
        assert!(expand_judged("x-${env:NOPE", &Anywhere).unwrap_err().contains("never closes"));
        // Without stand-ins, the same template is an error.
        assert!(expand_judged("${env:NOPE}", &FixedFacts).unwrap_err().contains("not set"));
    }
}
