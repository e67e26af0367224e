//! Scrape flakes (SPEC 8.3): one HTTP(S) GET of an exporter's exposition within the flake's
//! timeout, asking for the text format, accepting gzip, keeping at most 16 MiB of decoded body.
//!
//! The client is hyper-util's pooled client over hyper-rustls, the HTTP and TLS stack the AWS SDK
//! already brings (rustls with aws-lc-rs, the system's root certificates), so scraping adds no
//! second stack; `flate2` (also already in the tree) decodes gzip as the body streams in, so a
//! compressed bomb stops at the limit instead of filling memory. Every failure is a sentence for
//! the flake's log that never holds a header value (they may be secrets).

use std::sync::OnceLock;
use std::time::Duration;

use flate2::write::MultiGzDecoder;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::header::{ACCEPT, ACCEPT_ENCODING, CONTENT_ENCODING, HeaderName, HeaderValue, USER_AGENT};
use hyper::{Request, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;

use crate::creds::{Creds, Redactor};
use crate::flake::{ScrapeTarget, fill_header};

/// The most decoded body a scrape may yield; more is a failed run (SPEC 8.3).
pub const BODY_LIMIT: usize = 16 * 1024 * 1024;
/// What Prometheus itself sends: the text formats, OpenMetrics first.
const ACCEPT_TEXT: &str = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.1";

/// Why a scrape yielded no exposition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScrapeError {
    /// Refused, unreachable, TLS, non-2xx, too big, not gzip: a failed run.
    Failed(String),
    /// No response within `flakeTimeout`.
    TimedOut,
    /// The daemon is shutting down.
    Stopped,
}

type HttpsClient = Client<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// One client for every scrape: its pool keeps an exporter's connection between runs, and the
/// system's root certificates are read once.
fn client() -> &'static Result<HttpsClient, String> {
    static CLIENT: OnceLock<Result<HttpsClient, String>> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::aws_lc_rs::default_provider())
            .map_err(|error| format!("no TLS root certificates could be loaded from the system: {error}"))?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(90)).build(connector))
    })
}

/// The request headers: ours, then `flakeHeaders` with `${env:NAME}` filled from `creds.json`
/// first, then the daemon's environment. Every filled-in value and every header value is given to
/// `redactor`: a server that echoes a header in an error must not put it in a log.
pub fn request_headers(target: &ScrapeTarget, creds: &Creds, redactor: &Redactor) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let lookup = |name: &str| {
        let value =
            creds.variables.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).or_else(|| std::env::var(name).ok());
        if let Some(value) = &value {
            redactor.register(value);
        }
        value
    };
    let mut headers = vec![
        (ACCEPT, HeaderValue::from_static(ACCEPT_TEXT)),
        (ACCEPT_ENCODING, HeaderValue::from_static("gzip")),
        (USER_AGENT, HeaderValue::from_static(concat!("specialsnowflake/", env!("CARGO_PKG_VERSION")))),
    ];
    for header in &target.headers {
        let name =
            HeaderName::from_bytes(header.name.as_bytes()).map_err(|_| format!("flakeHeaders.{}: not a header name", header.name))?;
        let text = fill_header(&header.template, lookup).map_err(|reason| format!("flakeHeaders.{}: {reason}", header.name))?;
        redactor.register(&text);
        let mut value = HeaderValue::from_str(&text).map_err(|_| {
            format!("flakeHeaders.{}: the value after placeholders holds a character HTTP headers do not allow", header.name)
        })?;
        value.set_sensitive(true);
        headers.retain(|(existing, _)| existing != name);
        headers.push((name, value));
    }
    Ok(headers)
}

/// GETs `url` with `headers` within `timeout`; the decoded body, or why not.
pub async fn scrape(
    url: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    timeout: Duration,
    mut stop: watch::Receiver<bool>,
) -> Result<Vec<u8>, ScrapeError> {
    tokio::select! {
        result = tokio::time::timeout(timeout, fetch(url, headers)) => match result {
            Ok(body) => body.map_err(ScrapeError::Failed),
            Err(_) => Err(ScrapeError::TimedOut),
        },
        _ = stop.wait_for(|stopping| *stopping) => Err(ScrapeError::Stopped),
    }
}

async fn fetch(url: &str, headers: Vec<(HeaderName, HeaderValue)>) -> Result<Vec<u8>, String> {
    let uri: Uri = url.parse().map_err(|_| "flakeUrl is not a URL".to_string())?;
    let client = client().as_ref().map_err(Clone::clone)?;
    let mut request = Request::get(uri);
    for (name, value) in headers {
        request = request.header(name, value);
    }
    let request = request.body(Empty::new()).map_err(|error| format!("the request could not be built: {error}"))?;
    let response = client.request(request).await.map_err(|error| format!("GET {url} failed: {}", causes(&error)))?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("GET {url} answered {status}; a scrape needs a 2xx status"));
    }
    let gzip = match response.headers().get(CONTENT_ENCODING).map(|value| value.to_str().unwrap_or("?").trim().to_ascii_lowercase()) {
        None => false,
        Some(encoding) if encoding == "identity" || encoding.is_empty() => false,
        Some(encoding) if encoding == "gzip" || encoding == "x-gzip" => true,
        Some(encoding) => return Err(format!("GET {url} answered with Content-Encoding {encoding:?}; only gzip was asked for")),
    };
    let mut sink = BodySink::new(gzip);
    let mut body = response.into_body();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|error| format!("reading the body of {url} failed: {}", causes(&error)))?;
        if let Ok(data) = frame.into_data() {
            sink.write(&data).map_err(|reason| format!("the body of {url} {reason}"))?;
        }
    }
    sink.finish().map_err(|reason| format!("the body of {url} {reason}"))
}

/// The decoded body so far, refusing to grow past [`BODY_LIMIT`].
enum BodySink {
    Plain(Limited),
    /// Every member of the stream: concatenated gzip members are one valid gzip body (RFC 1952
    /// 2.2), as `gzip -c a b` or a server that flushes per chunk writes them (issue 22.9).
    Gzip(Box<MultiGzDecoder<Limited>>),
}

impl BodySink {
    fn new(gzip: bool) -> Self {
        if gzip { BodySink::Gzip(Box::new(MultiGzDecoder::new(Limited::default()))) } else { BodySink::Plain(Limited::default()) }
    }

    fn write(&mut self, data: &[u8]) -> Result<(), String> {
        use std::io::Write;
        match self {
            BodySink::Plain(limited) => limited.write_all(data),
            BodySink::Gzip(decoder) => decoder.write_all(data),
        }
        .map_err(|error| sink_error(&error))
    }

    fn finish(self) -> Result<Vec<u8>, String> {
        match self {
            BodySink::Plain(limited) => Ok(limited.bytes),
            BodySink::Gzip(decoder) => decoder.finish().map(|limited| limited.bytes).map_err(|error| sink_error(&error)),
        }
    }
}

fn sink_error(error: &std::io::Error) -> String {
    if error.kind() == std::io::ErrorKind::FileTooLarge {
        format!("is larger than {} MiB decoded; select fewer series at the exporter", BODY_LIMIT / (1024 * 1024))
    } else {
        format!("is not valid gzip: {error}")
    }
}

/// A byte buffer that errors instead of growing past the limit.
#[derive(Default)]
struct Limited {
    bytes: Vec<u8>,
}

impl std::io::Write for Limited {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + data.len() > BODY_LIMIT {
            return Err(std::io::Error::new(std::io::ErrorKind::FileTooLarge, "over the limit"));
        }
        self.bytes.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An error and its sources, `client error (Connect): tcp connect error: Connection refused`:
/// hyper's top-level message alone never says what went wrong.
fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn gzip_is_decoded_and_the_limit_counts_decoded_bytes() {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(b"up 1\n").unwrap();
        let compressed = encoder.finish().unwrap();
        let mut sink = BodySink::new(true);
        sink.write(&compressed).unwrap();
        assert_eq!(sink.finish().unwrap(), b"up 1\n");

        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        bomb.write_all(&vec![b'0'; BODY_LIMIT + 1]).unwrap();
        let bomb = bomb.finish().unwrap();
        assert!(bomb.len() < 100_000, "the bomb is small on the wire: {}", bomb.len());
        let mut sink = BodySink::new(true);
        let error = sink.write(&bomb).and_then(|()| sink.finish().map(|_| ())).unwrap_err();
        assert!(error.contains("larger than 16 MiB decoded"), "{error}");

        // Two members, as `cat a.gz b.gz` makes: one valid gzip body.
        let mut second = flate2::write::GzEncoder::new(compressed.clone(), flate2::Compression::default());
        second.write_all(b"down 0\n").unwrap();
        let members = second.finish().unwrap();
        let mut sink = BodySink::new(true);
        for chunk in members.chunks(7) {
            sink.write(chunk).unwrap();
        }
        assert_eq!(sink.finish().unwrap(), b"up 1\ndown 0\n");

        let mut sink = BodySink::new(true);
        let error = sink.write(b"not gzip at all").and_then(|()| sink.finish().map(|_| ())).unwrap_err();
        assert!(error.contains("not valid gzip"), "{error}");
    }

    #[test]
    fn headers_fill_from_creds_first_and_replace_ours() {
        let target = ScrapeTarget {
            url: "http://localhost/".to_string(),
            headers: vec![
                crate::flake::HeaderTemplate { name: "Authorization".to_string(), template: "Bearer ${env:TOKEN}".to_string() },
                crate::flake::HeaderTemplate { name: "accept".to_string(), template: "text/plain".to_string() },
            ],
        };
        let creds = Creds { variables: vec![("TOKEN".to_string(), "from-creds".to_string())] };
        let redactor = Redactor::default();
        let headers = request_headers(&target, &creds, &redactor).unwrap();
        assert_eq!(redactor.redact("echoed: Bearer from-creds"), "echoed: ********", "header values are secrets");
        let find = |name: &str| headers.iter().find(|(key, _)| key == name).map(|(_, value)| value.to_str().unwrap().to_string());
        assert_eq!(find("authorization").as_deref(), Some("Bearer from-creds"));
        assert_eq!(find("accept").as_deref(), Some("text/plain"));
        assert_eq!(headers.iter().filter(|(key, _)| key == ACCEPT).count(), 1);
        assert!(headers.iter().find(|(key, _)| key == "authorization").unwrap().1.is_sensitive());

        let error = request_headers(&target, &Creds::default(), &redactor).unwrap_err();
        assert!(error.contains("${env:TOKEN} is set neither"), "{error}");
    }
}
