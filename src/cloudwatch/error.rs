//! Why a CloudWatch call failed, sorted by what to do about it.

use std::fmt;

/// What kind of failure a call had; everything but `Invalid` is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// CloudWatch asked us to slow down.
    Throttling,
    /// Network trouble, timeouts, 5xx: CloudWatch may be back later.
    Unavailable,
    /// Missing, expired or insufficient credentials. Retried: dropping data because of an IAM
    /// mistake would lose it for good, and an operator can fix credentials while we wait.
    Credentials,
    /// CloudWatch rejected the request itself (a 400 other than throttling).
    Invalid,
}

/// A failed call, with CloudWatch's error code and message when there was one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    pub kind: ErrorKind,
    pub code: Option<String>,
    pub message: String,
}

impl CallError {
    pub fn new(kind: ErrorKind, code: Option<&str>, message: impl Into<String>) -> Self {
        CallError { kind, code: code.map(str::to_string), message: message.into() }
    }

    pub fn is_retryable(&self) -> bool {
        self.kind != ErrorKind::Invalid
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => write!(f, "{}", self.message),
        }
    }
}

impl std::error::Error for CallError {}

/// Error codes CloudWatch (and AWS generally) use for throttling.
pub fn is_throttling_code(code: &str) -> bool {
    matches!(
        code,
        "Throttling"
            | "ThrottlingException"
            | "ThrottledException"
            | "RequestLimitExceeded"
            | "TooManyRequestsException"
            | "RequestThrottled"
    )
}

/// Error codes for credential and permission problems.
pub fn is_credentials_code(code: &str) -> bool {
    matches!(
        code,
        "AccessDenied"
            | "AccessDeniedException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "ExpiredToken"
            | "ExpiredTokenException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature"
            | "MissingAuthenticationToken"
            | "InvalidSignatureException"
            | "NotAuthorized"
    )
}
