//! The SDK's HTTP client speaks TLS: after the build diet only one HTTP/TLS stack is built (hyper 1
//! with rustls 0.23), and LocalStack, which the other integration tests use, is plain http. Here
//! a local HTTPS peer (Python's `http.server` behind `ssl`, with a certificate made by `openssl`
//! and trusted through `SSL_CERT_FILE`, which the SDK's native root store reads) takes one
//! PutMetricData over https. Real CloudWatch differs only in its certificate's issuer, which the
//! system's root store trusts.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use specialsnowflake::cloudwatch::sdk::SdkCloudWatch;
use specialsnowflake::cloudwatch::{CloudWatch, Datum};

const SERVER: &str = r#"
import http.server, ssl, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        sys.stderr.write("request " + self.path + "\n"); sys.stderr.flush()
        self.send_response(200)
        self.send_header("content-type", "application/cbor")
        self.send_header("smithy-protocol", "rpc-v2-cbor")
        self.send_header("content-length", "1")
        self.end_headers()
        self.wfile.write(b"\xa0")  # an empty CBOR map: PutMetricData's output has no members
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[1], sys.argv[2])
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.handle_request()
"#;

struct Peer(Child);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn make_certificate(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost", "-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("this test needs the openssl command (Debian package openssl)");
    assert!(status.success(), "openssl could not make a certificate");
    (cert, key)
}

#[tokio::test]
async fn put_metric_data_goes_over_https() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = make_certificate(dir.path());
    let mut child = Command::new("python3")
        .args(["-c", SERVER])
        .arg(&cert)
        .arg(&key)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("this test needs python3 for its HTTPS peer");
    let mut port = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut port).unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let mut peer = Peer(child);
    let port: u16 = port.trim().parse().expect("the HTTPS peer prints its port");

    // SAFETY: this test binary has a single test; nothing else reads the environment meanwhile.
    unsafe {
        std::env::set_var("SSL_CERT_FILE", &cert);
        std::env::set_var("AWS_ACCESS_KEY_ID", "test");
        std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
        std::env::set_var("AWS_REGION", "us-east-1");
        std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    }
    let cloudwatch = SdkCloudWatch::with_endpoint(&format!("https://localhost:{port}")).await;
    let datum = Datum {
        metric_name: "tls".to_string(),
        dimensions: Vec::new(),
        value: 1.0,
        counted_values: Vec::new(),
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
        unit: "Count".to_string(),
        storage_resolution: 60,
    };
    let sent = cloudwatch.put_metric_data("us-east-1", "Https", &[datum]).await;

    let _ = peer.0.wait();
    let mut log = String::new();
    stderr.read_to_string(&mut log).unwrap();
    assert!(log.contains("request /service/GraniteServiceVersion20100801/operation/PutMetricData"), "the peer saw: {log:?}");
    assert!(sent.is_ok(), "{sent:?}");
}
