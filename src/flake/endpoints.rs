//! Alarm actions (`alarmEndpoints`): every one must be ARN-shaped, and the EC2 actions
//! (`arn:aws:automate:<region>:ec2:recover`, `reboot`, `stop`, `terminate`) must name one CloudWatch
//! knows. Placeholders are expanded before this check.

use super::fields::shorten;

const MAX_ARN: usize = 1024;
const EC2_ACTIONS: [&str; 4] = ["recover", "reboot", "stop", "terminate"];

/// `arn:partition:service:region:account:resource`, with partition, service and resource present;
/// an EC2 action names a known action. The message says which endpoint and what is wrong.
pub fn check_endpoint(arn: &str) -> Result<(), String> {
    let shown = shorten(arn, 80);
    let example = "write an ARN such as \"arn:aws:sns:eu-west-1:123456789012:ops\" or \"arn:aws:automate:${aws:Region}:ec2:recover\"";
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let shaped = arn.len() <= MAX_ARN
        && parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && !parts[2].is_empty()
        && !parts[5].is_empty()
        && !arn.chars().any(|c| c.is_whitespace() || c.is_control());
    if !shaped {
        return Err(format!("\"{shown}\" is not an action ARN (arn:partition:service:region:account:resource); {example}"));
    }
    if parts[2] == "automate" {
        let known = parts[4] == "ec2" && EC2_ACTIONS.contains(&parts[5]) && !parts[3].is_empty();
        if !known {
            return Err(format!(
                "\"{shown}\" is not an EC2 action; use arn:aws:automate:<region>:ec2: followed by recover, reboot, stop or terminate"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arns_and_ec2_actions_pass() {
        for arn in [
            "arn:aws:sns:eu-west-1:123456789012:ops",
            "arn:aws:automate:us-east-1:ec2:recover",
            "arn:aws:automate:eu-west-1:ec2:terminate",
            "arn:aws-cn:sns:cn-north-1:123456789012:ops",
            "arn:aws:ssm:us-east-1:123456789012:opsitem:3#CATEGORY=Availability",
        ] {
            assert_eq!(check_endpoint(arn), Ok(()), "{arn}");
        }
    }

    #[test]
    fn anything_else_is_named_and_refused() {
        for (arn, expected) in [
            ("ops-topic", "\"ops-topic\" is not an action ARN"),
            ("arn:aws:sns", "is not an action ARN"),
            ("arn::sns:eu-west-1:1:x", "is not an action ARN"),
            ("arn:aws:sns:eu-west-1:1:", "is not an action ARN"),
            ("arn:aws:sns:eu-west-1:1:with space", "is not an action ARN"),
            ("arn:aws:automate:us-east-1:ec2:reset", "is not an EC2 action"),
            ("arn:aws:automate::ec2:recover", "is not an EC2 action"),
        ] {
            let error = check_endpoint(arn).unwrap_err();
            assert!(error.contains(expected), "{arn}: {error}");
        }
    }
}
