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
}

/// Facts of the host the daemon runs on.
#[derive(Debug, Clone)]
pub struct HostFacts {
    hostname: Result<String, String>,
    /// `None` until fetched: no flake needed them yet.
    instance: Option<Result<BTreeMap<String, String>, String>>,
}

impl HostFacts {
    /// Hostname and environment only; `${aws:...}` placeholders report that facts were not read.
    pub fn local() -> Self {
        let hostname = nix::unistd::gethostname()
            .map_err(|error| format!("the hostname cannot be read: {error}"))
            .and_then(|name| name.into_string().map_err(|_| "the hostname is not valid UTF-8".to_string()));
        HostFacts { hostname, instance: None }
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

/// Replaces every placeholder in `template`, or says which one failed and why.
pub fn expand(template: &str, facts: &dyn Facts) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("\"{}\" opens a placeholder with ${{ but never closes it with }}", rest));
        };
        let name = &after[..end];
        out.push_str(&resolve(name, facts)?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve(name: &str, facts: &dyn Facts) -> Result<String, String> {
    let placeholder = format!("${{{name}}}");
    if name == "hostname" {
        return facts.hostname().map_err(|reason| format!("{placeholder}: {reason}"));
    }
    if let Some(variable) = name.strip_prefix("env:") {
        return facts
            .env(variable)
            .ok_or_else(|| format!("{placeholder}: environment variable {variable} is not set in the daemon's environment"));
    }
    if let Some(fact) = name.strip_prefix("aws:") {
        if !INSTANCE_FACTS.iter().any(|(known, _)| *known == fact) {
            return Err(format!("{placeholder} is not an instance fact; use one of {}", instance_fact_list()));
        }
        return facts.instance(fact).map_err(|reason| format!("{placeholder}: {reason}"));
    }
    Err(format!("{placeholder} is not a known placeholder; use ${{hostname}}, ${{env:NAME}} or one of {}", instance_fact_list()))
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
}
