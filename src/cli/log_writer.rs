//! The program's own log writer: every formatted line passes through the process's redactor
//! ([`Redactor::process`]) on its way to stdout or stderr, so a secret that reaches a log line
//! (a `creds.json` value pasted into a flake file's field and quoted back by its error, an AWS
//! error echoing a dimension value) is masked as in the flake logs.

use std::io::Write;

use tracing_subscriber::fmt::MakeWriter;

use crate::creds::Redactor;

/// Wraps a [`MakeWriter`]; each writer it makes masks secrets in what it writes.
pub struct RedactingMakeWriter<M> {
    inner: M,
    redactor: Redactor,
}

impl<M> RedactingMakeWriter<M> {
    pub fn new(inner: M, redactor: Redactor) -> Self {
        RedactingMakeWriter { inner, redactor }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for RedactingMakeWriter<M> {
    type Writer = RedactingWriter<'a, M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactingWriter { inner: self.inner.make_writer(), redactor: &self.redactor }
    }
}

/// One event's writer. tracing-subscriber formats a whole event into one buffer and hands it
/// over in one `write_all`, so a secret is never split across two calls here.
pub struct RedactingWriter<'a, W> {
    inner: W,
    redactor: &'a Redactor,
}

impl<W: Write> Write for RedactingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match std::str::from_utf8(buf) {
            Ok(text) => self.inner.write_all(self.redactor.redact_if_needed(text).as_bytes())?,
            // Not text (never from the formatter); masked as lossy text rather than passed raw.
            Err(_) => self.inner.write_all(self.redactor.redact(&String::from_utf8_lossy(buf)).as_bytes())?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn log_lines_are_masked_with_secrets_learnt_after_the_writer_was_made() {
        let captured = Captured::default();
        let redactor = Redactor::default();
        let sink = captured.clone();
        let make = RedactingMakeWriter::new(move || sink.clone(), redactor.clone());
        let subscriber = tracing_subscriber::fmt().with_writer(make).with_ansi(false).finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!("before: s3cr3t-token-value");
            redactor.register("s3cr3t-token-value");
            tracing::warn!(field = "s3cr3t-token-value", "after: s3cr3t-token-value");
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].contains("before: s3cr3t-token-value"), "not yet a secret: {text}");
        assert!(lines[1].contains("after: ********") && !lines[1].contains("s3cr3t"), "{text}");
    }
}
