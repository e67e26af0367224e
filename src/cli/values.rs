//! Parsers for flag values that are not plain numbers or paths.

use std::net::SocketAddr;

/// `256MiB`, `1GiB`, `500MB`, `64KiB`, or a number of bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text.len() - text.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = text.split_at(digits);
    let number: u64 =
        number.parse().map_err(|_| format!("{text:?} is not a size; write bytes or a number with KiB, MiB, GiB (or KB, MB, GB)"))?;
    let factor = crate::flake::bytes_per(unit)
        .ok_or_else(|| format!("{text:?}: unknown unit {:?}; use KiB, MiB, GiB, KB, MB or GB", unit.trim().to_ascii_lowercase()))?;
    number.checked_mul(factor).ok_or_else(|| format!("{text:?} is too large"))
}

/// `127.0.0.1:9731`, `0.0.0.0:9731`, `[::1]:9731`, or `off`.
pub fn parse_listen(text: &str) -> Result<Listen, String> {
    if text.trim().eq_ignore_ascii_case("off") {
        return Ok(Listen(None));
    }
    text.trim()
        .parse::<SocketAddr>()
        .map(|address| Listen(Some(address)))
        .map_err(|_| format!("{text:?} is not an address; write IP:PORT such as 127.0.0.1:9731, or off"))
}

/// Where to serve /healthz and /metrics, if anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen(pub Option<SocketAddr>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("500MB"), Ok(500_000_000));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").unwrap_err().contains("unknown unit"));
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(parse_listen("off"), Ok(Listen(None)));
        assert_eq!(parse_listen("0.0.0.0:9731").unwrap().0.unwrap().port(), 9731);
        assert!(parse_listen("localhost").is_err());
    }
}
