//! The spool's on-disk record: `[length u32 LE][crc32 u32 LE][payload]`, payload a compact JSON
//! object. The checksum covers the payload, so a record cut short by a crash, or garbage after
//! it, is recognised and never read as data.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::publish::{Datapoint, Series};

/// First bytes of every segment file; a different value means a format this build cannot read.
pub const MAGIC: &[u8; 8] = b"SNOWSPL1";
const HEADER: usize = 8;
/// No datapoint comes near this; a larger length field means the bytes are not a record.
const MAX_PAYLOAD: usize = 1 << 20;
/// Every payload starts so (serde writes the fields in declaration order); a cheap first test
/// when looking for the next record after damage.
const PAYLOAD_START: &[u8] = b"{\"q\":";

/// One spooled datapoint, self-contained: a segment can be replayed without anything else.
#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(rename = "q")]
    seq: u64,
    #[serde(rename = "t")]
    timestamp_ms: i64,
    #[serde(rename = "v")]
    value: f64,
    #[serde(rename = "s")]
    series: std::borrow::Cow<'a, Series>,
}

/// Appends the framed record of `point` with sequence number `seq` to `buffer`.
pub fn encode(buffer: &mut Vec<u8>, seq: u64, point: &Datapoint) {
    let stored = Stored { seq, timestamp_ms: point.timestamp_ms, value: point.value, series: std::borrow::Cow::Borrowed(&point.series) };
    // Written in place after a header filled in afterwards: no payload buffer per record.
    let header = buffer.len();
    buffer.extend_from_slice(&[0; HEADER]);
    serde_json::to_writer(&mut *buffer, &stored).expect("a datapoint always serializes");
    let payload = &buffer[header + HEADER..];
    let (length, crc) = ((payload.len() as u32).to_le_bytes(), crc32fast::hash(payload).to_le_bytes());
    buffer[header..header + 4].copy_from_slice(&length);
    buffer[header + 4..header + HEADER].copy_from_slice(&crc);
}

/// A record read back from a segment.
pub struct Decoded {
    pub seq: u64,
    pub point: Datapoint,
}

/// How a segment's bytes after the last whole record end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// Nothing after the last record.
    Clean,
    /// A record cut short (or a zero-filled end): what a crash mid-write leaves. Nothing that
    /// was acknowledged as durable is in it.
    Torn,
    /// Bytes that are not a record and not a cut-short one: damage, with no whole record after it.
    Corrupt,
}

/// What reading a segment found.
pub struct Decoding {
    /// Every whole record, in file order.
    pub records: Vec<Decoded>,
    /// Damaged stretches between whole records that were skipped (each one or more records lost).
    pub skipped_regions: usize,
    /// Bytes not read as records: the skipped stretches and the tail.
    pub unreadable_bytes: usize,
    pub tail: Tail,
}

impl Decoding {
    /// Damage other than a torn tail: the segment holds bytes that were once records.
    pub fn is_corrupt(&self) -> bool {
        self.skipped_regions > 0 || self.tail == Tail::Corrupt
    }
}

/// Every whole record of `bytes` (a segment's content after the magic).
///
/// A record that fails its checksum (a flipped byte, a bad length field) is skipped, and reading
/// resumes at the next whole record found after it, so one damaged record costs only itself.
/// After the last whole record, a record cut short is a torn tail (a crash mid-write); anything
/// else is corruption.
pub fn decode_all(bytes: &[u8], series: &mut HashMap<Series, Arc<Series>>) -> Decoding {
    let mut decoding = Decoding { records: Vec::new(), skipped_regions: 0, unreadable_bytes: 0, tail: Tail::Clean };
    let mut offset = 0;
    while offset < bytes.len() {
        if let Some((stored, next)) = frame_at(bytes, offset) {
            let shared = intern(series, stored.series.into_owned());
            decoding.records.push(Decoded {
                seq: stored.seq,
                point: Datapoint { series: shared, value: stored.value, timestamp_ms: stored.timestamp_ms },
            });
            offset = next;
            continue;
        }
        match (offset + 1..bytes.len()).find(|&start| frame_at(bytes, start).is_some()) {
            Some(resume) => {
                decoding.skipped_regions += 1;
                decoding.unreadable_bytes += resume - offset;
                offset = resume;
            }
            None => {
                decoding.unreadable_bytes += bytes.len() - offset;
                decoding.tail = if is_torn(&bytes[offset..]) { Tail::Torn } else { Tail::Corrupt };
                break;
            }
        }
    }
    decoding
}

/// The record starting at `offset`, and where the next one starts, if a whole valid one is there.
fn frame_at(bytes: &[u8], offset: usize) -> Option<(Stored<'_>, usize)> {
    let header = bytes.get(offset..offset + HEADER)?;
    let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let checksum = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let start = offset + HEADER;
    // Cheap tests first: while resynchronising this runs at every byte of a damaged stretch.
    if length > MAX_PAYLOAD || !bytes[start..].starts_with(PAYLOAD_START) || bytes.len() - start < length {
        return None;
    }
    let payload = &bytes[start..start + length];
    if crc32fast::hash(payload) != checksum {
        return None;
    }
    let stored = serde_json::from_slice::<Stored>(payload).ok()?;
    Some((stored, start + length))
}

/// What a crash mid-append leaves: part of a header, a record whose length runs past the end of
/// the file, or (on file systems that extend the size before the data lands) zeros.
fn is_torn(rest: &[u8]) -> bool {
    if rest.len() < HEADER || rest.iter().all(|&byte| byte == 0) {
        return true;
    }
    let length = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    length <= MAX_PAYLOAD && rest.len() - HEADER < length
}

/// One shared `Series` per distinct series, so a replayed backlog costs little memory.
fn intern(series: &mut HashMap<Series, Arc<Series>>, value: Series) -> Arc<Series> {
    if let Some(shared) = series.get(&value) {
        return shared.clone();
    }
    let shared = Arc::new(value.clone());
    series.insert(value, shared.clone());
    shared
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(value: f64) -> Datapoint {
        Datapoint {
            series: Arc::new(Series {
                flake: "f".into(),
                region: "us-east-1".into(),
                namespace: "N".into(),
                metric_name: "m".into(),
                dimensions: vec![("Host".into(), "h".into())],
                unit: "Count".into(),
                storage_resolution: 60,
                aggregate_seconds: None,
            }),
            value,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn round_trip_shares_series() {
        let mut buffer = Vec::new();
        encode(&mut buffer, 7, &point(1.5));
        encode(&mut buffer, 8, &point(-2.0));
        let mut interned = HashMap::new();
        let decoding = decode_all(&buffer, &mut interned);
        assert_eq!((decoding.tail, decoding.unreadable_bytes), (Tail::Clean, 0));
        let records = decoding.records;
        assert_eq!(records.iter().map(|r| (r.seq, r.point.value)).collect::<Vec<_>>(), [(7, 1.5), (8, -2.0)]);
        assert!(Arc::ptr_eq(&records[0].point.series, &records[1].point.series));
        assert_eq!(records[0].point, point(1.5));
    }

    #[test]
    fn every_cut_point_yields_the_whole_records_before_it() {
        let mut buffer = Vec::new();
        let mut ends = vec![0];
        for i in 0..5 {
            encode(&mut buffer, i, &point(i as f64));
            ends.push(buffer.len());
        }
        for cut in 0..=buffer.len() {
            let decoding = decode_all(&buffer[..cut], &mut HashMap::new());
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(decoding.records.len(), whole, "cut at {cut}");
            assert_eq!(decoding.unreadable_bytes, cut - ends[whole]);
            let tail = if cut == ends[whole] { Tail::Clean } else { Tail::Torn };
            assert_eq!(decoding.tail, tail, "a cut is a torn tail, never corruption (cut at {cut})");
        }
    }

    fn segment(count: u64) -> (Vec<u8>, Vec<usize>) {
        let mut buffer = Vec::new();
        let mut starts = Vec::new();
        for i in 0..count {
            starts.push(buffer.len());
            encode(&mut buffer, i, &point(i as f64));
        }
        (buffer, starts)
    }

    fn seqs(decoding: &Decoding) -> Vec<u64> {
        decoding.records.iter().map(|record| record.seq).collect()
    }

    #[test]
    fn a_flipped_byte_costs_only_its_own_record() {
        let (clean, starts) = segment(15);
        // Every byte of record 5 in turn: header (length, checksum) or payload.
        for position in starts[5]..starts[6] {
            let mut buffer = clean.clone();
            buffer[position] ^= 0x40;
            let decoding = decode_all(&buffer, &mut HashMap::new());
            let expected: Vec<u64> = (0..15).filter(|&i| i != 5).collect();
            assert_eq!(seqs(&decoding), expected, "byte {position} flipped");
            assert_eq!((decoding.skipped_regions, decoding.tail), (1, Tail::Clean), "byte {position}");
            assert!(decoding.is_corrupt());
        }
    }

    #[test]
    fn a_bad_length_field_costs_only_its_own_record() {
        let (clean, starts) = segment(15);
        for length in [0u32, 1, 100, 5_000, u32::MAX] {
            let mut buffer = clean.clone();
            buffer[starts[3]..starts[3] + 4].copy_from_slice(&length.to_le_bytes());
            let decoding = decode_all(&buffer, &mut HashMap::new());
            assert_eq!(seqs(&decoding).len(), 14, "length {length}");
            assert!(!seqs(&decoding).contains(&3));
        }
    }

    #[test]
    fn damage_in_the_last_record_is_corruption_and_a_cut_is_torn() {
        let (clean, starts) = segment(4);
        let mut flipped = clean.clone();
        *flipped.last_mut().unwrap() ^= 0x01;
        let decoding = decode_all(&flipped, &mut HashMap::new());
        assert_eq!((seqs(&decoding), decoding.tail), (vec![0, 1, 2], Tail::Corrupt));
        assert_eq!(decoding.unreadable_bytes, clean.len() - starts[3]);

        let mut garbage = clean.clone();
        garbage.extend_from_slice(b"not a record at all");
        assert_eq!(decode_all(&garbage, &mut HashMap::new()).tail, Tail::Corrupt);

        let mut zeros = clean.clone();
        zeros.extend_from_slice(&[0; 4096]);
        let decoding = decode_all(&zeros, &mut HashMap::new());
        assert_eq!((decoding.records.len(), decoding.tail), (4, Tail::Torn), "a zero-filled end is what a crash leaves");
    }
}
