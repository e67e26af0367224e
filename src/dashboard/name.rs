//! `--dashboard NAME`: placeholders expanded (`snowflake-${hostname}`), then held to CloudWatch's
//! rule for dashboard names (1-255 characters from A-Z a-z 0-9 - _).
//!
//! A placeholder's value is made to fit (a hostname such as `ip-10-0-0-7.ec2.internal` becomes
//! `ip-10-0-0-7-ec2-internal`), because an operator cannot choose it; the text written in the flag
//! itself must already fit, because the operator can.

use crate::placeholders::{Facts, expand};

const MAX_NAME: usize = 255;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The dashboard name of the `--dashboard` template, or what is wrong with it and how to fix it.
pub fn dashboard_name(template: &str, facts: &dyn Facts) -> Result<String, String> {
    let mut name = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("${") {
        literal(&rest[..start], template)?;
        name.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else {
            return Err(format!("--dashboard {template:?}: a placeholder opens with ${{ but never closes with }}"));
        };
        let value = expand(&rest[start..start + end + 1], facts).map_err(|reason| format!("--dashboard {template:?}: {reason}"))?;
        name.extend(value.chars().map(|c| if allowed(c) { c } else { '-' }));
        rest = &rest[start + end + 1..];
    }
    literal(rest, template)?;
    name.push_str(rest);
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!(
            "--dashboard {template:?}: the name is {} characters long; CloudWatch takes 1-{MAX_NAME}",
            name.chars().count()
        ));
    }
    Ok(name)
}

fn literal(text: &str, template: &str) -> Result<(), String> {
    match text.chars().find(|c| !allowed(*c)) {
        Some(bad) => Err(format!(
            "--dashboard {template:?}: {bad:?} is not allowed in a dashboard name; use letters, digits, - and _ \
             (placeholders such as ${{hostname}} are made to fit by themselves)"
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Host(&'static str);

    impl Facts for Host {
        fn hostname(&self) -> Result<String, String> {
            Ok(self.0.to_string())
        }
        fn env(&self, name: &str) -> Option<String> {
            (name == "STAGE").then(|| "prod".to_string())
        }
        fn instance(&self, _: &str) -> Result<String, String> {
            Err("not on EC2".to_string())
        }
    }

    #[test]
    fn placeholders_are_expanded_and_made_to_fit() {
        assert_eq!(dashboard_name("snowflake-${hostname}", &Host("web-1")).unwrap(), "snowflake-web-1");
        assert_eq!(
            dashboard_name("snowflake-${hostname}", &Host("ip-10-0-0-7.ec2.internal")).unwrap(),
            "snowflake-ip-10-0-0-7-ec2-internal"
        );
        assert_eq!(dashboard_name("${env:STAGE}_hosts", &Host("x")).unwrap(), "prod_hosts");
    }

    #[test]
    fn what_the_operator_wrote_must_fit_and_errors_say_how() {
        let error = dashboard_name("my dashboard", &Host("x")).unwrap_err();
        assert!(error.contains("--dashboard") && error.contains("' '") && error.contains("letters, digits"), "{error}");
        let error = dashboard_name("d-${aws:InstanceId}", &Host("x")).unwrap_err();
        assert!(error.contains("${aws:InstanceId}: not on EC2"), "{error}");
        let error = dashboard_name("d-${hostname", &Host("x")).unwrap_err();
        assert!(error.contains("never closes"), "{error}");
        assert!(dashboard_name(&"x".repeat(256), &Host("x")).unwrap_err().contains("1-255"));
        assert!(dashboard_name("", &Host("x")).is_err());
    }
}
