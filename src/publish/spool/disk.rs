//! The durable spool: append-only segment files of checksummed records, with a sidecar file of
//! acknowledged sequence numbers per segment.
//!
//! ```text
//! <state-dir>/spool/LOCK                          held by the one daemon using this spool
//! <state-dir>/spool/00000000000000004096.seg      "SNOWSPL1", then records (see record.rs)
//! <state-dir>/spool/00000000000000004096.ack      u64 LE sequence numbers CloudWatch accepted
//! ```
//!
//! Appends write every record of a commit with one `write` and one `fdatasync`. A segment is
//! deleted once every record in it is acknowledged. After a crash, segments are read back, a torn
//! tail is skipped, acknowledged records are left out, and a new segment is started (a segment
//! that may end in a torn record is never appended to again). Acknowledgements are not synced:
//! losing one costs a duplicate after a crash, never a lost datapoint (at-least-once delivery).

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::record::{MAGIC, Tail, decode_all, encode};
use super::{Dropped, Spool, SpoolStats};
use crate::publish::{Datapoint, MAX_AGE};

/// The smallest and largest segment size: small enough that dropping one for the size bound
/// loses little, large enough that segments are few.
const MIN_SEGMENT: u64 = 4 * 1024;
const MAX_SEGMENT: u64 = 8 * 1024 * 1024;

/// What opening the spool found.
#[derive(Debug, Default)]
pub struct Recovered {
    pub points: crate::publish::Replay,
    /// Segments that ended in a torn record (normal after a crash mid-write).
    pub torn_segments: usize,
    /// Segments with damage other than a torn tail (their whole records are recovered, and a
    /// copy of the file is kept under `spool/corrupt/`).
    pub corrupt_segments: usize,
    /// Entries named like segments that could not be read (a directory, say); left alone.
    pub unreadable_segments: usize,
    pub dropped_by_age: u64,
}

struct Segment {
    first_seq: u64,
    /// One past the last sequence number written to it.
    end_seq: u64,
    /// Bytes of the segment and its ack file.
    bytes: u64,
    /// Records neither acknowledged nor dropped.
    pending: u64,
    /// Timestamp of its newest datapoint: once that is too old, so is every record in it.
    newest_ms: i64,
}

/// The spool under `<state-dir>/spool`.
pub struct DiskSpool {
    dir: PathBuf,
    max_bytes: u64,
    segment_target: u64,
    /// Oldest first; the last one is where appends go, unless `active` is `None`.
    segments: Vec<Segment>,
    active: Option<File>,
    next_seq: u64,
    _lock: Flock<File>,
}

impl DiskSpool {
    /// Opens (creating if needed) the spool in `state_dir` and recovers what a previous run left.
    pub fn open(state_dir: &Path, max_bytes: u64, now_ms: i64) -> Result<(DiskSpool, Recovered), String> {
        let dir = state_dir.join("spool");
        // A file where the spool directory belongs is damage: set aside, never a failed start.
        crate::statefile::clear_for_directory(&dir);
        std::fs::create_dir_all(&dir).map_err(|error| {
            format!(
                "state directory {}: cannot create {}: {error}; set --state-dir (SNOWFLAKE_STATE_DIR) to a writable directory",
                state_dir.display(),
                dir.display()
            )
        })?;
        let lock_path = dir.join("LOCK");
        crate::statefile::clear_for_lock(&lock_path);
        let lock_file = OpenOptions::new().create(true).truncate(false).write(true).open(&lock_path).map_err(|error| {
            format!(
                "state directory {} is not writable ({error}); set --state-dir (SNOWFLAKE_STATE_DIR) to a writable directory",
                state_dir.display()
            )
        })?;
        let lock = Flock::lock(lock_file, FlockArg::LockExclusiveNonblock).map_err(|(_, error)| {
            format!(
                "state directory {} is in use by another snowflake daemon ({error}); give each daemon its own --state-dir",
                state_dir.display()
            )
        })?;
        let mut spool = DiskSpool {
            dir,
            max_bytes,
            segment_target: (max_bytes / 16).clamp(MIN_SEGMENT, MAX_SEGMENT),
            segments: Vec::new(),
            active: None,
            next_seq: 0,
            _lock: lock,
        };
        let recovered = spool.recover(now_ms).map_err(|error| format!("spool {}: cannot be read: {error}", spool.dir.display()))?;
        Ok((spool, recovered))
    }

    fn segment_path(&self, first_seq: u64, extension: &str) -> PathBuf {
        self.dir.join(format!("{first_seq:020}.{extension}"))
    }

    fn recover(&mut self, now_ms: i64) -> io::Result<Recovered> {
        let names: Vec<String> = std::fs::read_dir(&self.dir)?.filter_map(|entry| entry.ok()?.file_name().into_string().ok()).collect();
        let numbered = |suffix: &str| -> Vec<u64> { names.iter().filter_map(|name| name.strip_suffix(suffix)?.parse().ok()).collect() };
        let mut firsts = numbered(".seg");
        firsts.sort_unstable();
        // An .ack without its .seg is what a crash between the two unlinks leaves; it must not
        // acknowledge records of a future segment that reuses the name.
        for orphan in numbered(".ack").into_iter().filter(|first| !firsts.contains(first)) {
            let _ = std::fs::remove_file(self.segment_path(orphan, "ack"));
        }
        // Sequence numbers never go back, even if every file is gone: start above the clock too.
        self.next_seq = firsts.last().map_or(0, |last| last + 1).max(u64::try_from(now_ms).unwrap_or(0) << 10);
        let oldest_kept = now_ms - MAX_AGE.as_millis() as i64;
        let mut recovered = Recovered::default();
        let mut series = HashMap::new();
        for first_seq in firsts {
            let path = self.segment_path(first_seq, "seg");
            let bytes = match read_segment(&path) {
                Ok(bytes) => bytes,
                Err(reason) => {
                    // Not ours to delete and no reason to stay down: what the other segments
                    // hold is sent, and this one waits for the operator.
                    recovered.unreadable_segments += 1;
                    tracing::error!(path = %path.display(), "spool entry named like a segment cannot be read ({reason}); left alone, remove or move it");
                    continue;
                }
            };
            if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
                if bytes.len() >= MAGIC.len() {
                    tracing::error!(path = %path.display(), "spool segment of an unknown format is left alone");
                    continue;
                }
                // Created but never written: a crash right after rolling to a new segment.
                self.remove_segment_files(first_seq);
                continue;
            }
            let decoding = decode_all(&bytes[MAGIC.len()..], &mut series);
            if decoding.is_corrupt() {
                recovered.corrupt_segments += 1;
                let kept_at = self.keep_aside(first_seq);
                tracing::error!(
                    path = %path.display(),
                    recovered = decoding.records.len(),
                    damaged_stretches = decoding.skipped_regions + usize::from(decoding.tail == Tail::Corrupt),
                    unreadable_bytes = decoding.unreadable_bytes,
                    copy = %kept_at,
                    "spool segment is corrupt (not a crash mid-write: bytes changed on disk); every whole record in it is recovered, the damaged ones are lost"
                );
            } else if decoding.tail == Tail::Torn {
                recovered.torn_segments += 1;
                tracing::warn!(path = %path.display(), kept = decoding.records.len(), skipped_bytes = decoding.unreadable_bytes, "spool segment ends in a torn record (a crash mid-write); the whole records before it are recovered");
            }
            let records = decoding.records;
            let acked = read_acks(&self.segment_path(first_seq, "ack"));
            let mut segment = Segment { first_seq, end_seq: first_seq, bytes: bytes.len() as u64, pending: 0, newest_ms: i64::MIN };
            let mut expired = Vec::new();
            for record in records {
                segment.end_seq = segment.end_seq.max(record.seq + 1);
                if acked.contains(&record.seq) {
                    continue;
                }
                if record.point.timestamp_ms < oldest_kept {
                    expired.push(record.seq);
                    continue;
                }
                segment.pending += 1;
                segment.newest_ms = segment.newest_ms.max(record.point.timestamp_ms);
                recovered.points.push((record.seq, record.point));
            }
            recovered.dropped_by_age += expired.len() as u64;
            self.next_seq = self.next_seq.max(segment.end_seq);
            if segment.pending == 0 {
                self.remove_segment_files(first_seq);
            } else {
                segment.bytes += std::fs::metadata(self.segment_path(first_seq, "ack")).map_or(0, |m| m.len());
                self.segments.push(segment);
                if !expired.is_empty() {
                    self.write_acks(first_seq, &expired)?;
                }
            }
        }
        if recovered.dropped_by_age > 0 {
            tracing::warn!(
                count = recovered.dropped_by_age,
                "dropped spooled datapoints older than 14 days: CloudWatch no longer accepts them"
            );
        }
        recovered.points.sort_by_key(|(seq, _)| *seq);
        Ok(recovered)
    }

    /// Starts a new segment for appends: after a restart, when the current one is full, or after
    /// a failed write (whose file may now end in a torn record).
    fn roll(&mut self) -> io::Result<()> {
        self.active = None;
        let first_seq = self.next_seq;
        let path = self.segment_path(first_seq, "seg");
        // Whatever happens, this name and number are used up: a retry gets fresh ones.
        self.next_seq += 1;
        let created = OpenOptions::new().create_new(true).append(true).open(&path).and_then(|mut file| {
            file.write_all(MAGIC)?;
            file.sync_data()?;
            // The new name must survive a crash too.
            File::open(&self.dir)?.sync_all()?;
            Ok(file)
        });
        let file = match created {
            Ok(file) => file,
            Err(error) => {
                if error.kind() != io::ErrorKind::AlreadyExists {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(error);
            }
        };
        self.segments.push(Segment { first_seq, end_seq: first_seq, bytes: MAGIC.len() as u64, pending: 0, newest_ms: i64::MIN });
        self.active = Some(file);
        Ok(())
    }

    /// Keeps a copy of a damaged segment under `spool/corrupt/` for the operator: the segment
    /// itself is deleted as usual once its readable records are delivered. A hard link costs no
    /// space until then; a copy is the fallback. Says where the copy is, or why there is none.
    fn keep_aside(&self, first_seq: u64) -> String {
        let dir = self.dir.join("corrupt");
        let source = self.segment_path(first_seq, "seg");
        let target = dir.join(format!("{first_seq:020}.seg"));
        let kept = std::fs::create_dir_all(&dir).and_then(|_| match std::fs::hard_link(&source, &target) {
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
            Err(_) => std::fs::copy(&source, &target).map(|_| ()),
            Ok(()) => Ok(()),
        });
        match kept {
            Ok(()) => target.display().to_string(),
            Err(error) => format!("none: cannot keep a copy at {}: {error}", target.display()),
        }
    }

    fn write_acks(&self, first_seq: u64, seqs: &[u64]) -> io::Result<u64> {
        let mut buffer = Vec::with_capacity(seqs.len() * 8);
        for seq in seqs {
            buffer.extend_from_slice(&seq.to_le_bytes());
        }
        OpenOptions::new().create(true).append(true).open(self.segment_path(first_seq, "ack"))?.write_all(&buffer)?;
        Ok(buffer.len() as u64)
    }

    fn remove_segment_files(&self, first_seq: u64) {
        // The .ack first: a crash in between leaves a segment with nothing acknowledged (at
        // worst duplicates), never acknowledgements without their segment.
        let _ = std::fs::remove_file(self.segment_path(first_seq, "ack"));
        let _ = std::fs::remove_file(self.segment_path(first_seq, "seg"));
    }

    /// Deletes segments with nothing pending, except the one appends go to.
    fn remove_finished(&mut self) {
        let active_first = self.active.as_ref().and_then(|_| self.segments.last()).map(|segment| segment.first_seq);
        let (finished, kept): (Vec<Segment>, Vec<Segment>) = std::mem::take(&mut self.segments)
            .into_iter()
            .partition(|segment| segment.pending == 0 && Some(segment.first_seq) != active_first);
        self.segments = kept;
        for segment in finished {
            self.remove_segment_files(segment.first_seq);
        }
    }

    fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|segment| segment.bytes).sum()
    }
}

/// A segment's bytes; anything but a regular file (a stray directory, a device) is refused.
fn read_segment(path: &Path) -> Result<Vec<u8>, String> {
    let metadata = std::fs::metadata(path).map_err(|error| error.to_string())?;
    if !metadata.is_file() {
        return Err("not a regular file".to_string());
    }
    std::fs::read(path).map_err(|error| error.to_string())
}

fn read_acks(path: &Path) -> std::collections::HashSet<u64> {
    let bytes = std::fs::read(path).unwrap_or_default();
    // A trailing partial number is an ack cut short by a crash: ignoring it costs one duplicate.
    bytes.chunks_exact(8).map(|chunk| u64::from_le_bytes(chunk.try_into().expect("8 bytes"))).collect()
}

impl Spool for DiskSpool {
    fn append(&mut self, points: &[Datapoint]) -> io::Result<u64> {
        if points.is_empty() {
            return Ok(self.next_seq);
        }
        let full = self.segments.last().is_none_or(|segment| segment.bytes >= self.segment_target);
        if self.active.is_none() || full {
            self.roll()?;
            self.remove_finished();
        }
        let first = self.next_seq;
        let mut buffer = Vec::with_capacity(points.len() * 256);
        for (offset, point) in points.iter().enumerate() {
            encode(&mut buffer, first + offset as u64, point);
        }
        let file = self.active.as_mut().expect("rolled above");
        let written = file.write_all(&buffer).and_then(|_| file.sync_data());
        if let Err(error) = written {
            // The file may now end in part of a record: never append after it, and never hand
            // out these sequence numbers again (a partly written record may still be read back).
            self.active = None;
            self.next_seq += points.len() as u64;
            return Err(error);
        }
        self.next_seq += points.len() as u64;
        let segment = self.segments.last_mut().expect("rolled above");
        segment.end_seq = self.next_seq;
        segment.bytes += buffer.len() as u64;
        segment.pending += points.len() as u64;
        segment.newest_ms = points.iter().map(|point| point.timestamp_ms).fold(segment.newest_ms, i64::max);
        Ok(first)
    }

    fn ack(&mut self, seqs: &[u64]) -> io::Result<()> {
        let mut by_segment: HashMap<u64, Vec<u64>> = HashMap::new();
        for &seq in seqs {
            // Segments are sorted by first sequence number; the owner is the last starting at or before `seq`.
            let index = self.segments.partition_point(|segment| segment.first_seq <= seq);
            if let Some(segment) = index.checked_sub(1).map(|index| &self.segments[index])
                && seq < segment.end_seq
            {
                by_segment.entry(segment.first_seq).or_default().push(seq);
            }
        }
        for (first_seq, seqs) in by_segment {
            let written = self.write_acks(first_seq, &seqs)?;
            if let Some(segment) = self.segments.iter_mut().find(|segment| segment.first_seq == first_seq) {
                segment.pending = segment.pending.saturating_sub(seqs.len() as u64);
                segment.bytes += written;
            }
        }
        self.remove_finished();
        Ok(())
    }

    fn enforce_limits(&mut self, now_ms: i64) -> Dropped {
        let mut dropped = Dropped::default();
        let oldest_kept = now_ms - MAX_AGE.as_millis() as i64;
        let mut index = 0;
        while index < self.segments.len() {
            let is_active = self.active.is_some() && index + 1 == self.segments.len();
            let segment = &self.segments[index];
            if !is_active && segment.pending > 0 && segment.newest_ms < oldest_kept {
                let segment = self.segments.remove(index);
                dropped.age_count += segment.pending;
                dropped.by_age.push(segment.first_seq..segment.end_seq);
                self.remove_segment_files(segment.first_seq);
            } else {
                index += 1;
            }
        }
        while self.total_bytes() > self.max_bytes && !self.segments.is_empty() {
            if self.segments.len() == 1 {
                // Only the active segment is left and it alone is over the bound: close it so
                // the next append starts afresh, and drop it like any other.
                self.active = None;
            }
            let segment = self.segments.remove(0);
            dropped.size_count += segment.pending;
            dropped.by_size.push(segment.first_seq..segment.end_seq);
            self.remove_segment_files(segment.first_seq);
        }
        dropped
    }

    fn stats(&self) -> SpoolStats {
        SpoolStats { bytes: self.total_bytes(), pending: self.segments.iter().map(|segment| segment.pending).sum() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn points(range: std::ops::Range<u32>, timestamp_ms: i64) -> Vec<Datapoint> {
        let series = super::tests_support::series();
        range.map(|i| Datapoint { series: series.clone(), value: f64::from(i), timestamp_ms: timestamp_ms + i64::from(i) }).collect()
    }

    fn values(recovered: &Recovered) -> Vec<f64> {
        recovered.points.iter().map(|(_, point)| point.value).collect()
    }

    #[test]
    fn unacknowledged_points_come_back_after_a_restart_with_their_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, recovered) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
        assert!(recovered.points.is_empty());
        let first = spool.append(&points(0..6, NOW)).unwrap();
        assert_eq!(spool.append(&points(6..10, NOW)).unwrap(), first + 6);
        spool.ack(&[first, first + 1, first + 2, first + 7]).unwrap();
        assert_eq!(spool.stats().pending, 6);
        drop(spool);

        let (mut spool, recovered) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
        assert_eq!(values(&recovered), [3.0, 4.0, 5.0, 6.0, 8.0, 9.0]);
        assert_eq!(recovered.points[0].1.timestamp_ms, NOW + 3);
        assert_eq!(recovered.points.iter().map(|(seq, _)| *seq - first).collect::<Vec<_>>(), [3, 4, 5, 6, 8, 9]);
        assert!(spool.append(&points(10..11, NOW)).unwrap() > first + 9, "sequence numbers never go back");
    }

    #[test]
    fn fully_acknowledged_segments_are_deleted() {
        let dir = tempfile::tempdir().unwrap();
        // 64 KiB bound: 4 KiB segments, so a few hundred points span several.
        let (mut spool, _) = DiskSpool::open(dir.path(), 64 * 1024, NOW).unwrap();
        let mut seqs = Vec::new();
        for range in [0..60, 60..120, 120..180] {
            let first = spool.append(&points(range, NOW)).unwrap();
            seqs.extend(first..first + 60);
        }
        let segments = || {
            std::fs::read_dir(dir.path().join("spool"))
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "seg"))
                .count()
        };
        assert!(segments() >= 3, "{}", segments());
        spool.ack(&seqs).unwrap();
        assert_eq!(segments(), 1, "only the segment appends go to remains");
        assert_eq!(spool.stats().pending, 0);
    }

    #[test]
    fn a_segment_cut_at_any_byte_recovers_every_whole_record_before_the_cut() {
        let mut rng = fastrand::Rng::with_seed(20261121);
        for _ in 0..40 {
            let dir = tempfile::tempdir().unwrap();
            let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
            spool.append(&points(0..25, NOW)).unwrap();
            drop(spool);
            let path = std::fs::read_dir(dir.path().join("spool"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|x| x == "seg"))
                .unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let cut = rng.usize(MAGIC.len()..bytes.len());
            std::fs::write(&path, &bytes[..cut]).unwrap();
            // Whole records before the cut, by decoding the prefix independently.
            let decoding = decode_all(&bytes[MAGIC.len()..cut], &mut HashMap::new());
            let (whole, whole_end) = (decoding.records, cut - MAGIC.len() - decoding.unreadable_bytes);

            let (mut spool, recovered) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
            assert_eq!(recovered.points.len(), whole.len(), "cut at byte {cut} of {}", bytes.len());
            assert_eq!(values(&recovered), (0..whole.len()).map(|i| i as f64).collect::<Vec<_>>());
            let cut_mid_record = MAGIC.len() + whole_end < cut;
            assert_eq!(recovered.torn_segments, usize::from(cut_mid_record), "cut at byte {cut}");
            // New data goes to a fresh segment and survives the next restart too.
            spool.append(&points(100..101, NOW)).unwrap();
            drop(spool);
            let (_, again) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
            assert_eq!(again.points.len(), whole.len() + 1);
        }
    }

    #[test]
    fn over_the_size_bound_the_oldest_are_dropped_and_counted_and_the_newest_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = DiskSpool::open(dir.path(), 16 * 1024, NOW).unwrap();
        let mut dropped = Dropped::default();
        for batch in 0..40u32 {
            spool.append(&points(batch * 10..batch * 10 + 10, NOW)).unwrap();
            let more = spool.enforce_limits(NOW);
            dropped.size_count += more.size_count;
            dropped.by_size.extend(more.by_size);
        }
        assert!(spool.stats().bytes <= 16 * 1024, "{:?}", spool.stats());
        assert!(dropped.size_count > 0);
        let first_seq = dropped.by_size[0].start;
        assert!(!dropped.contains(first_seq + 420), "the newest stay");
        assert_eq!(spool.stats().pending + dropped.size_count, 400, "every point is either kept or counted as dropped");
        drop(spool);
        let (_, recovered) = DiskSpool::open(dir.path(), 16 * 1024, NOW).unwrap();
        assert_eq!(recovered.points.last().unwrap().1.value, 399.0);
    }

    #[test]
    fn points_older_than_fourteen_days_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let day = 86_400_000;
        let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
        spool.append(&points(0..3, NOW - 15 * day)).unwrap();
        spool.append(&points(3..5, NOW)).unwrap();
        drop(spool);
        let (_, recovered) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
        assert_eq!(values(&recovered), [3.0, 4.0]);
        assert_eq!(recovered.dropped_by_age, 3);
    }

    #[test]
    fn a_second_daemon_on_the_same_state_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, _) = DiskSpool::open(dir.path(), 1 << 20, NOW).unwrap();
        let error = DiskSpool::open(dir.path(), 1 << 20, NOW).err().unwrap();
        assert!(error.contains("in use by another snowflake daemon"), "{error}");
    }

    #[test]
    fn an_unwritable_state_dir_is_a_clear_error() {
        let error = DiskSpool::open(Path::new("/proc/snowflake-state"), 1 << 20, NOW).err().unwrap();
        assert!(error.contains("/proc/snowflake-state") && error.contains("--state-dir"), "{error}");
    }
}

#[cfg(test)]
mod recovery_edge_tests {
    use super::*;

    #[test]
    fn orphan_acknowledgements_are_removed_and_numbers_never_repeat() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        std::fs::create_dir_all(&spool_dir).unwrap();
        // A crash between the two unlinks of a finished segment left its .ack behind.
        std::fs::write(spool_dir.join(format!("{:020}.ack", 5)), 5u64.to_le_bytes()).unwrap();
        let (spool, _) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        assert!(!spool_dir.join(format!("{:020}.ack", 5)).exists());
        assert!(spool.next_seq >= 1_800_000_000_000 << 10, "numbering starts above the clock, not at 0");
    }

    fn only_segment(spool_dir: &Path) -> PathBuf {
        std::fs::read_dir(spool_dir).unwrap().map(|e| e.unwrap().path()).find(|p| p.extension().is_some_and(|x| x == "seg")).unwrap()
    }

    #[test]
    fn a_flipped_byte_loses_one_record_and_the_file_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        let first = spool.append(&(0..15).map(|_| super::tests_support::point()).collect::<Vec<_>>()).unwrap();
        drop(spool);
        let path = only_segment(&spool_dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let record = (bytes.len() - MAGIC.len()) / 15;
        // A byte in the payload of the sixth record.
        bytes[MAGIC.len() + 5 * record + 40] ^= 0x08;
        std::fs::write(&path, &bytes).unwrap();

        let (mut spool, recovered) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        let seqs: Vec<u64> = recovered.points.iter().map(|(seq, _)| seq - first).collect();
        assert_eq!(seqs, [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 14], "only the damaged record is lost");
        assert_eq!((recovered.corrupt_segments, recovered.torn_segments), (1, 0));
        let copy = spool_dir.join("corrupt").join(path.file_name().unwrap());
        assert_eq!(std::fs::read(&copy).unwrap(), bytes, "the damaged file is kept for the operator");

        // Delivering what was readable deletes the segment, never the copy.
        spool.ack(&recovered.points.iter().map(|(seq, _)| *seq).collect::<Vec<_>>()).unwrap();
        assert!(!path.exists());
        assert!(copy.exists());
    }

    #[test]
    fn damage_that_cannot_be_skipped_is_corruption_not_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let spool_dir = dir.path().join("spool");
        let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        spool.append(&(0..5).map(|_| super::tests_support::point()).collect::<Vec<_>>()).unwrap();
        drop(spool);
        let path = only_segment(&spool_dir);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let (_, recovered) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        assert_eq!(recovered.points.len(), 4);
        assert_eq!((recovered.corrupt_segments, recovered.torn_segments), (1, 0));
        assert!(spool_dir.join("corrupt").join(path.file_name().unwrap()).exists());
    }

    #[test]
    fn a_directory_named_like_a_segment_is_skipped_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        spool.append(std::slice::from_ref(&super::tests_support::point())).unwrap();
        drop(spool);
        let stray = dir.path().join("spool").join(format!("{:020}.seg", 7));
        std::fs::create_dir(&stray).unwrap();

        let (mut spool, recovered) =
            DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).expect("a stray directory does not stop the daemon");
        assert_eq!(recovered.points.len(), 1, "the real segment is still replayed");
        assert_eq!(recovered.unreadable_segments, 1);
        spool.append(std::slice::from_ref(&super::tests_support::point())).unwrap();
        assert!(stray.is_dir(), "left alone for the operator");
    }

    #[test]
    fn a_name_already_taken_does_not_block_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (mut spool, _) = DiskSpool::open(dir.path(), 1 << 20, 1_800_000_000_000).unwrap();
        // Something (a failed earlier roll) already holds the next segment's name.
        std::fs::write(spool.segment_path(spool.next_seq, "seg"), b"").unwrap();
        let point = super::tests_support::point();
        assert!(spool.append(std::slice::from_ref(&point)).is_err(), "the taken name fails once");
        spool.append(std::slice::from_ref(&point)).expect("the retry uses a fresh name");
        assert_eq!(spool.stats().pending, 1);
    }
}

#[cfg(test)]
mod tests_support {
    use crate::publish::{Datapoint, Series};
    use std::sync::Arc;

    pub fn series() -> Arc<Series> {
        Arc::new(Series {
            flake: "f".into(),
            region: "us-east-1".into(),
            namespace: "N".into(),
            metric_name: "m".into(),
            dimensions: vec![],
            unit: "None".into(),
            storage_resolution: 60,
            aggregate_seconds: None,
        })
    }

    pub fn point() -> Datapoint {
        Datapoint { series: series(), value: 1.0, timestamp_ms: 1_800_000_000_000 }
    }
}
