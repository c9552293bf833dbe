//! Byte-stream plumbing for snapshots: counting rows in PostgreSQL's binary COPY
//! format as it streams past, compressing and checking chunks, and turning a channel of
//! verified chunks back into a `Read`.

use std::io::Read;
use std::sync::mpsc::Receiver;

use ripcord_core::snapshot::{Chunk, chunk_hash};

/// zstd level: level 1 keeps compression ahead of COPY on one core.
pub(crate) const ZSTD_LEVEL: i32 = 1;

/// Raw bytes per chunk.
pub(crate) const CHUNK_BYTES: usize = 8 << 20;

/// Counts tuples in a binary COPY stream without buffering it.
#[derive(Debug, Default)]
pub(crate) struct CopyRowCounter {
    rows: u64,
    /// The stream's header (signature, flags, extension), to start further parts with.
    header: Vec<u8>,
    state: CounterState,
    small: [u8; 19],
    have: usize,
    skip: u64,
    fields_left: i16,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum CounterState {
    #[default]
    Header,
    TupleHead,
    FieldLength,
    Done,
}

impl CopyRowCounter {
    /// Tuples seen so far.
    pub(crate) fn rows(&self) -> u64 {
        self.rows
    }

    /// Whether the trailer was seen.
    pub(crate) fn finished(&self) -> bool {
        self.state == CounterState::Done
    }

    /// Whether everything fed so far ends exactly between two tuples (after the
    /// header), so a new part may start here.
    pub(crate) fn at_tuple_boundary(&self) -> bool {
        self.state == CounterState::TupleHead && self.have == 0 && self.skip == 0
    }

    /// The header of the stream, once read.
    pub(crate) fn header(&self) -> &[u8] {
        &self.header
    }

    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64) as usize;
                if self.state == CounterState::TupleHead
                    && self.rows == 0
                    && self.header.len() >= 19
                {
                    // Still in the header's extension area.
                    self.header.extend_from_slice(&data[..n]);
                }
                data = &data[n..];
                self.skip -= n as u64;
                continue;
            }
            let need = match self.state {
                CounterState::Header => 19,
                CounterState::TupleHead => 2,
                CounterState::FieldLength => 4,
                CounterState::Done => return,
            };
            let take = (need - self.have).min(data.len());
            self.small[self.have..self.have + take].copy_from_slice(&data[..take]);
            self.have += take;
            data = &data[take..];
            if self.have < need {
                return;
            }
            self.have = 0;
            match self.state {
                CounterState::Header => {
                    self.header.extend_from_slice(&self.small[..19]);
                    let extension = u32::from_be_bytes(self.small[15..19].try_into().unwrap());
                    self.skip = u64::from(extension);
                    self.state = CounterState::TupleHead;
                }
                CounterState::TupleHead => {
                    let fields = i16::from_be_bytes([self.small[0], self.small[1]]);
                    if fields < 0 {
                        self.state = CounterState::Done;
                    } else {
                        self.rows += 1;
                        self.fields_left = fields;
                        if fields > 0 {
                            self.state = CounterState::FieldLength;
                        }
                    }
                }
                CounterState::FieldLength => {
                    let length = i32::from_be_bytes(self.small[..4].try_into().unwrap());
                    if length > 0 {
                        self.skip = length as u64;
                    }
                    self.fields_left -= 1;
                    if self.fields_left == 0 {
                        self.state = CounterState::TupleHead;
                    }
                }
                CounterState::Done => {}
            }
        }
    }
}

/// The end of a binary COPY stream.
pub(crate) const COPY_TRAILER: [u8; 2] = [0xff, 0xff];

/// Compress `raw` into a chunk stored as `object`; returns the stored bytes and the
/// manifest entry.
pub(crate) fn seal_chunk(object: String, raw: &[u8]) -> std::io::Result<(Vec<u8>, Chunk)> {
    let stored = zstd::bulk::compress(raw, ZSTD_LEVEL)?;
    let chunk = Chunk {
        object,
        raw_bytes: raw.len() as u64,
        stored_bytes: stored.len() as u64,
        blake3: chunk_hash(raw),
    };
    Ok((stored, chunk))
}

/// Decompress and check one stored chunk; the reason when it is damaged.
pub(crate) fn open_chunk(chunk: &Chunk, stored: &[u8]) -> Result<Vec<u8>, String> {
    if stored.len() as u64 != chunk.stored_bytes {
        return Err(format!(
            "chunk {} has {} bytes, the manifest says {}",
            chunk.object,
            stored.len(),
            chunk.stored_bytes
        ));
    }
    let raw = zstd::bulk::decompress(stored, chunk.raw_bytes as usize)
        .map_err(|e| format!("chunk {} does not decompress ({e})", chunk.object))?;
    if raw.len() as u64 != chunk.raw_bytes || chunk_hash(&raw) != chunk.blake3 {
        return Err(format!(
            "chunk {} does not match its hash in the manifest",
            chunk.object
        ));
    }
    Ok(raw)
}

/// A `Read` over verified chunks arriving on a channel; an `Err` item ends the read
/// with that error.
pub(crate) struct ChunkReader {
    pub(crate) chunks: Receiver<Result<Vec<u8>, String>>,
    pub(crate) current: Vec<u8>,
    pub(crate) at: usize,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at == self.current.len() {
            match self.chunks.recv() {
                Ok(Ok(next)) => {
                    self.current = next;
                    self.at = 0;
                }
                Ok(Err(reason)) => return Err(std::io::Error::other(reason)),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A binary COPY stream of `rows`, each a list of fields (None = NULL).
    fn copy_stream(rows: &[Vec<Option<Vec<u8>>>], extension: &[u8]) -> Vec<u8> {
        let mut out = b"PGCOPY\n\xff\r\n\0".to_vec();
        out.extend(0u32.to_be_bytes());
        out.extend((extension.len() as u32).to_be_bytes());
        out.extend(extension);
        for row in rows {
            out.extend((row.len() as i16).to_be_bytes());
            for field in row {
                match field {
                    None => out.extend((-1i32).to_be_bytes()),
                    Some(bytes) => {
                        out.extend((bytes.len() as i32).to_be_bytes());
                        out.extend(bytes);
                    }
                }
            }
        }
        out.extend((-1i16).to_be_bytes());
        out
    }

    proptest! {
        #[test]
        fn counts_rows_whatever_the_pieces(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)), 0..5),
                0..30),
            extension in proptest::collection::vec(any::<u8>(), 0..8),
            cuts in proptest::collection::vec(1usize..50, 1..40),
        ) {
            let stream = copy_stream(&rows, &extension);
            let mut counter = CopyRowCounter::default();
            let mut at = 0;
            for cut in cuts.iter().cycle() {
                if at >= stream.len() { break; }
                let end = (at + cut).min(stream.len());
                counter.feed(&stream[at..end]);
                at = end;
            }
            prop_assert_eq!(counter.rows(), rows.len() as u64);
            prop_assert!(counter.finished());
        }
    }

    proptest! {
        #[test]
        fn cut_parts_are_complete_streams_with_all_rows(
            rows in proptest::collection::vec(
                proptest::collection::vec(proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)), 1..4),
                0..40),
            cut_every in 1usize..200,
        ) {
            // One slice per tuple, as the server sends them, after the header.
            let stream = copy_stream(&rows, &[]);
            let mut counter = CopyRowCounter::default();
            counter.feed(&stream[..19]);
            let mut parts: Vec<Vec<u8>> = vec![stream[..19].to_vec()];
            let mut at = 19;
            let mut since_cut = 0;
            for row in &rows {
                let len = 2 + row.iter().map(|f| 4 + f.as_ref().map_or(0, Vec::len)).sum::<usize>();
                let slice = &stream[at..at + len];
                counter.feed(slice);
                parts.last_mut().unwrap().extend_from_slice(slice);
                at += len;
                since_cut += len;
                if since_cut >= cut_every && counter.at_tuple_boundary() {
                    parts.last_mut().unwrap().extend_from_slice(&COPY_TRAILER);
                    parts.push(counter.header().to_vec());
                    since_cut = 0;
                }
            }
            counter.feed(&stream[at..]);
            parts.last_mut().unwrap().extend_from_slice(&stream[at..]);
            prop_assert!(counter.finished());
            let mut total = 0;
            for part in &parts {
                let mut check = CopyRowCounter::default();
                check.feed(part);
                prop_assert!(check.finished(), "each part ends with the trailer");
                total += check.rows();
            }
            prop_assert_eq!(total, rows.len() as u64);
        }
    }

    #[test]
    fn a_flipped_byte_is_named() {
        let (mut stored, chunk) = seal_chunk("x/000000.zst".into(), &[7u8; 10_000]).unwrap();
        assert_eq!(open_chunk(&chunk, &stored).unwrap(), vec![7u8; 10_000]);
        let last = stored.len() - 1;
        stored[last] ^= 0x40;
        let err = open_chunk(&chunk, &stored).unwrap_err();
        assert!(err.contains("x/000000.zst"), "{err}");
    }
}
