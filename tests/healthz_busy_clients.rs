//! `/healthz` under busy keep-alive clients (issue 22, item 7): 256 clients that each send a
//! request every 3 s on their own kept-alive connection hold every ordinary connection slot of
//! the listener; liveness probes must still get through. Loopback only, bounded in count (256
//! clients, 10 probes) and time (about 15 s).

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{Daemon, Workspace};

const BUSY_CLIENTS: usize = 256;

/// Sends `GET /metrics` on `stream` (kept alive) and reads the whole answer.
fn request(stream: &mut BufReader<TcpStream>) -> std::io::Result<()> {
    stream.get_mut().write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
    let mut length = 0;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if line == "\r\n" {
            break;
        }
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    stream.read_exact(&mut body)
}

#[test]
fn liveness_probes_get_through_while_busy_clients_hold_every_slot() {
    let workspace = Workspace::new();
    let daemon = Daemon::start(workspace.snowflake().arg("--dry-run"), &workspace, &[]);
    let port = daemon.port;
    let stop = Arc::new(AtomicBool::new(false));
    let connected = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..BUSY_CLIENTS)
        .map(|_| {
            let (stop, connected) = (stop.clone(), connected.clone());
            std::thread::spawn(move || {
                let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut stream = BufReader::new(stream);
                if request(&mut stream).is_err() {
                    return false;
                }
                connected.fetch_add(1, Ordering::SeqCst);
                while !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_secs(3));
                    if request(&mut stream).is_err() {
                        return false;
                    }
                }
                true
            })
        })
        .collect();
    daemon.wait_for(Duration::from_secs(30), "every busy client to be served once", || connected.load(Ordering::SeqCst) == BUSY_CLIENTS);

    let mut answered = 0;
    for _ in 0..10 {
        if daemon.get("/healthz").is_some_and(|(status, _)| status == 200) {
            answered += 1;
        }
        std::thread::sleep(Duration::from_millis(1500));
    }
    stop.store(true, Ordering::SeqCst);
    let kept_alive = clients.into_iter().map(|client| client.join().unwrap()).filter(|ok| *ok).count();
    assert_eq!(answered, 10, "probes answered while {BUSY_CLIENTS} busy clients held the slots");
    assert_eq!(kept_alive, BUSY_CLIENTS, "the busy clients were served throughout");
}
