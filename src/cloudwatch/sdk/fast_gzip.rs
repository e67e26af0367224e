//! PutMetricData bodies gzipped at flate2's fastest level instead of the SDK's fixed level 6.
//!
//! The SDK compresses every request body of 10 KB or more (CloudWatch's `@requestCompression`)
//! at level 6, and that was a sixth of the daemon's CPU on a busy scrape (docs/benchmarks.md,
//! issue 27). A batch is up to 1,000 datums repeating the same names and dimensions, which the
//! fastest level compresses nearly as well. The SDK offers no level setting, so its compression
//! is turned off and this interceptor does the same job at the point the SDK would (once, before
//! the retry loop, so the signature covers the compressed body). An operator's
//! `AWS_DISABLE_REQUEST_COMPRESSION=true` still means no compression at all. The price: a batch of
//! 1,000 datums (180 KB of CBOR) is 10.5 KB on the wire instead of 8.7 KB.

use std::io::Write;

use aws_sdk_cloudwatch::config::interceptors::BeforeTransmitInterceptorContextMut;
use aws_sdk_cloudwatch::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_cloudwatch::error::BoxError;
use flate2::Compression;
use flate2::write::GzEncoder;

/// Bodies smaller than this go as they are: the SDK's own default threshold.
pub const DEFAULT_MIN_BYTES: u32 = 10_240;

#[derive(Debug)]
pub struct FastGzip {
    pub min_bytes: u32,
}

impl Intercept for FastGzip {
    fn name(&self) -> &'static str {
        "FastGzip"
    }

    fn modify_before_retry_loop(
        &self,
        context: &mut BeforeTransmitInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request_mut();
        let Some(body) = request.body().bytes() else {
            return Ok(()); // a streaming body: CloudWatch's requests never are
        };
        if body.len() < self.min_bytes as usize {
            return Ok(());
        }
        let compressed = gzip(body)?;
        request.headers_mut().insert("content-encoding", "gzip");
        request.headers_mut().insert("content-length", compressed.len().to_string());
        *request.body_mut() = compressed.into();
        Ok(())
    }
}

fn gzip(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::fast());
    encoder.write_all(body)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gzipped_body_reads_back_whole() {
        let body: Vec<u8> = (0..50_000u32).flat_map(|i| format!("datum {} ", i % 97).into_bytes()).collect();
        let compressed = gzip(&body).unwrap();
        assert!(compressed.len() * 5 < body.len(), "{} of {}", compressed.len(), body.len());
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&compressed[..]), &mut decoded).unwrap();
        assert_eq!(decoded, body);
    }
}

#[cfg(test)]
mod wiring_tests {
    //! The interceptor as the client uses it: what reaches a PutMetricData peer.

    use std::sync::{Arc, Mutex};

    use aws_config::{BehaviorVersion, Region, SdkConfig};
    use aws_sdk_cloudwatch::config::{Credentials, SharedCredentialsProvider};
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper::server::conn::http1;
    use hyper::service::service_fn;

    use crate::cloudwatch::sdk::SdkCloudWatch;
    use crate::cloudwatch::{CloudWatch, Datum};

    /// What the peer received: the Content-Encoding header and the body as sent.
    type Seen = Arc<Mutex<Vec<(Option<String>, Vec<u8>)>>>;

    /// A PutMetricData peer that records each request and answers as CloudWatch's CBOR protocol does.
    async fn peer() -> (String, Seen) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let seen: Seen = Arc::default();
        let recorded = seen.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let recorded = recorded.clone();
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let recorded = recorded.clone();
                    async move {
                        let encoding = request.headers().get("content-encoding").map(|value| value.to_str().unwrap().to_string());
                        let body = request.into_body().collect().await.unwrap().to_bytes().to_vec();
                        recorded.lock().unwrap().push((encoding, body));
                        let response = hyper::Response::builder()
                            .header("smithy-protocol", "rpc-v2-cbor")
                            .header("content-type", "application/cbor")
                            .body(Full::new(Bytes::from_static(b"\xa0")))
                            .unwrap();
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                tokio::spawn(http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service));
            }
        });
        (endpoint, seen)
    }

    fn config(endpoint: &str, compression_disabled: bool) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new("AKIDEXAMPLE", "not-a-secret", None, None, "test")))
            .disable_request_compression(compression_disabled)
            .build()
    }

    fn batch(count: usize) -> Vec<Datum> {
        (0..count)
            .map(|i| Datum {
                metric_name: format!("node_filesystem_avail_bytes_{}", i % 40),
                dimensions: vec![("Host".into(), "web-1".into()), ("mountpoint".into(), format!("/srv/{i}"))],
                value: i as f64,
                counted_values: Vec::new(),
                timestamp_ms: 1_765_000_000_000,
                unit: "Bytes".into(),
                storage_resolution: 60,
            })
            .collect()
    }

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut decoded = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut decoded).unwrap();
        decoded
    }

    #[tokio::test]
    async fn a_full_batch_goes_gzipped_and_whole_a_small_one_as_it_is() {
        let (endpoint, seen) = peer().await;
        let cloudwatch = SdkCloudWatch::from_config(config(&endpoint, false));
        cloudwatch.put_metric_data("us-east-1", "Bench/Gzip", &batch(1000)).await.unwrap();
        cloudwatch.put_metric_data("us-east-1", "Bench/Gzip", &batch(3)).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].0.as_deref(), Some("gzip"));
        // The gzip header's XFL byte: 4 says "fastest algorithm" (the SDK's level 6 leaves 0).
        assert_eq!(seen[0].1[8], 4, "compressed at the fastest level");
        let decoded = gunzip(&seen[0].1);
        assert_eq!(decoded.windows(11).filter(|window| window == b"jMetricName").count(), 1000, "every datum arrives");
        assert!(seen[0].1.len() * 5 < decoded.len(), "{} bytes sent for {}", seen[0].1.len(), decoded.len());
        assert_eq!(seen[1].0, None, "under 10 KB a body is sent as it is");
    }

    #[tokio::test]
    async fn aws_disable_request_compression_still_sends_plain_bodies() {
        let (endpoint, seen) = peer().await;
        let cloudwatch = SdkCloudWatch::from_config(config(&endpoint, true));
        cloudwatch.put_metric_data("us-east-1", "Bench/Gzip", &batch(1000)).await.unwrap();
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0, None);
        assert_eq!(seen[0].1.windows(11).filter(|window| window == b"jMetricName").count(), 1000);
    }
}
