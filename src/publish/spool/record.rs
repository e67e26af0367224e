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
    let payload = serde_json::to_vec(&stored).expect("a datapoint always serializes");
    buffer.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buffer.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buffer.extend_from_slice(&payload);
}

/// A record read back from a segment.
pub struct Decoded {
    pub seq: u64,
    pub point: Datapoint,
}

/// Every whole record of `bytes` (a segment's content after the magic), and where the readable
/// part ends: anything after that offset is a torn or corrupt tail.
pub fn decode_all(bytes: &[u8], series: &mut HashMap<Series, Arc<Series>>) -> (Vec<Decoded>, usize) {
    let mut records = Vec::new();
    let mut offset = 0;
    while bytes.len() - offset >= HEADER {
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes")) as usize;
        let checksum = u32::from_le_bytes(bytes[offset + 4..offset + 8].try_into().expect("4 bytes"));
        let start = offset + HEADER;
        if length > MAX_PAYLOAD || bytes.len() - start < length {
            break;
        }
        let payload = &bytes[start..start + length];
        if crc32fast::hash(payload) != checksum {
            break;
        }
        let Ok(stored) = serde_json::from_slice::<Stored>(payload) else { break };
        let shared = intern(series, stored.series.into_owned());
        records
            .push(Decoded { seq: stored.seq, point: Datapoint { series: shared, value: stored.value, timestamp_ms: stored.timestamp_ms } });
        offset = start + length;
    }
    (records, offset)
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
        let (records, end) = decode_all(&buffer, &mut interned);
        assert_eq!(end, buffer.len());
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
            let (records, end) = decode_all(&buffer[..cut], &mut HashMap::new());
            let whole = ends.iter().filter(|&&e| e <= cut).count() - 1;
            assert_eq!(records.len(), whole, "cut at {cut}");
            assert_eq!(end, ends[whole]);
        }
    }

    #[test]
    fn a_flipped_bit_ends_the_readable_part() {
        let mut buffer = Vec::new();
        encode(&mut buffer, 1, &point(1.0));
        let first = buffer.len();
        encode(&mut buffer, 2, &point(2.0));
        buffer[first + 12] ^= 0x40;
        let (records, end) = decode_all(&buffer, &mut HashMap::new());
        assert_eq!(records.len(), 1);
        assert_eq!(end, first);
    }
}
