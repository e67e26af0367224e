//! Draining a child's pipe: keep the first bytes, throw the rest away, never stop reading.
//!
//! A child blocks once a pipe buffer fills, so both pipes are read to the end even when what they
//! carry is no longer kept. When the child closes the pipe, reading ends; nothing polls.

use tokio::io::{AsyncRead, AsyncReadExt};

/// How much of each stream is kept.
pub const CAPTURE_LIMIT: usize = 64 * 1024;

/// The kept head of one output stream.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    pub bytes: Vec<u8>,
    /// More was written than was kept.
    pub truncated: bool,
}

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Reads `reader` to its end into `captured`, keeping at most `limit` bytes. Writing into the
/// caller's buffer means what was read is kept even if the caller stops waiting.
///
/// Output is read straight into the kept buffer, which grows only as far as the output does
/// (a number is a few bytes); what goes past the limit passes through a small buffer allocated
/// only then. A thousand runs at once thus cost kilobytes, not a fixed buffer each.
pub async fn drain<R: AsyncRead + Unpin>(reader: Option<R>, limit: usize, captured: &mut Captured) {
    let Some(mut reader) = reader else { return };
    while captured.bytes.len() < limit {
        // Never let a read go past the limit: ask for at most what is still kept.
        let room = limit - captured.bytes.len();
        let mut head = (&mut reader).take(room as u64);
        match head.read_buf(&mut captured.bytes).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    // Only output past the limit gets here; the buffer is not part of every run's state.
    let mut discard = vec![0u8; 8192];
    loop {
        match reader.read(&mut discard).await {
            Ok(0) | Err(_) => return,
            Ok(_) => captured.truncated = true,
        }
    }
}

/// Keeps what of `chunk` still fits under `limit` (output that arrives in pieces, such as a
/// container's attach stream); what does not is counted as cut off, as [`drain`] does.
pub fn keep(captured: &mut Captured, limit: usize, chunk: &[u8]) {
    let room = limit.saturating_sub(captured.bytes.len());
    captured.bytes.extend_from_slice(&chunk[..room.min(chunk.len())]);
    if chunk.len() > room {
        captured.truncated = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keeps_the_head_and_reads_the_rest() {
        let data = vec![b'x'; 100_000];
        let mut captured = Captured::default();
        drain(Some(&data[..]), CAPTURE_LIMIT, &mut captured).await;
        assert_eq!(captured.bytes.len(), CAPTURE_LIMIT);
        assert!(captured.truncated);

        let mut captured = Captured::default();
        drain(Some(&b"42\n"[..]), CAPTURE_LIMIT, &mut captured).await;
        assert_eq!(captured.bytes, b"42\n");
        assert!(!captured.truncated);
    }
}
