//! Push-based FastCDC chunking.
//!
//! Produces exactly the boundaries of `fastcdc::v2020::StreamCDC` (the same
//! gear tables, masks and cut function) but is fed slices as they arrive, so
//! gRPC streams, HTTP bodies and files share one implementation. Memory is
//! bounded by `max_size` plus the slice being pushed.

use std::io::Read;

use bytes::Bytes;
use fastcdc::v2020::{self, Normalization};
use tessera_proto::ChunkHash;

use super::hash::hash_chunk;

/// Chunk size bounds in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChunkerParams {
    pub min_size: usize,
    pub avg_size: usize,
    pub max_size: usize,
}

impl Default for ChunkerParams {
    /// 1 / 4 / 8 MiB: the design's 4 MiB average; the minimum is 1 MiB because
    /// FastCDC v2020 caps it there (mean chunk ≈ 5 MiB).
    fn default() -> Self {
        Self { min_size: 1 << 20, avg_size: 4 << 20, max_size: 8 << 20 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid chunk sizes {min}/{avg}/{max}: {why}")]
pub struct InvalidChunkerParams {
    pub min: usize,
    pub avg: usize,
    pub max: usize,
    pub why: &'static str,
}

impl ChunkerParams {
    pub fn validate(&self) -> Result<(), InvalidChunkerParams> {
        let err = |why| InvalidChunkerParams { min: self.min_size, avg: self.avg_size, max: self.max_size, why };
        if !(v2020::MINIMUM_MIN..=v2020::MINIMUM_MAX).contains(&self.min_size) {
            return Err(err("min must be between 64 B and 1 MiB"));
        }
        if !(v2020::AVERAGE_MIN..=v2020::AVERAGE_MAX).contains(&self.avg_size) {
            return Err(err("avg must be between 256 B and 4 MiB"));
        }
        if !(v2020::MAXIMUM_MIN..=v2020::MAXIMUM_MAX).contains(&self.max_size) {
            return Err(err("max must be between 1 KiB and 16 MiB"));
        }
        if !(self.min_size <= self.avg_size && self.avg_size <= self.max_size) {
            return Err(err("need min <= avg <= max"));
        }
        if [self.min_size, self.avg_size, self.max_size].iter().any(|s| !s.is_multiple_of(2)) {
            return Err(err("sizes must be even"));
        }
        Ok(())
    }
}

/// One content-defined chunk.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Byte offset of the chunk in the stream.
    pub offset: u64,
    pub data: Bytes,
    pub hash: ChunkHash,
}

pub struct Chunker {
    params: ChunkerParams,
    masks: (u64, u64),
    buf: Vec<u8>,
    /// Start of unconsumed bytes in `buf`.
    start: usize,
    offset: u64,
}

impl Chunker {
    pub fn new(params: ChunkerParams) -> Result<Self, InvalidChunkerParams> {
        params.validate()?;
        Ok(Self {
            params,
            masks: v2020::select_masks(params.avg_size, Normalization::Level1),
            buf: Vec::with_capacity(params.max_size * 2),
            start: 0,
            offset: 0,
        })
    }

    pub fn params(&self) -> ChunkerParams {
        self.params
    }

    fn cut(&self, window: &[u8]) -> usize {
        let (mask_s, mask_l) = self.masks;
        let (_, count) = v2020::cut(
            window,
            self.params.min_size,
            self.params.avg_size,
            self.params.max_size,
            mask_s,
            mask_l,
            mask_s << 1,
            mask_l << 1,
        );
        count
    }

    fn emit(&mut self, count: usize, out: &mut Vec<Chunk>) {
        let data = Bytes::copy_from_slice(&self.buf[self.start..self.start + count]);
        let hash = hash_chunk(&data);
        out.push(Chunk { offset: self.offset, data, hash });
        self.offset += count as u64;
        self.start += count;
    }

    /// Feeds bytes; appends every chunk whose end is now known to `out`.
    pub fn push(&mut self, mut input: &[u8], out: &mut Vec<Chunk>) {
        let max = self.params.max_size;
        while !input.is_empty() {
            // Keep at most `max` unconsumed bytes plus what we copy now.
            let room = max - (self.buf.len() - self.start);
            let take = room.min(input.len());
            self.buf.extend_from_slice(&input[..take]);
            input = &input[take..];
            // A cut is final once a full `max` window is buffered (this is
            // when StreamCDC cuts too).
            while self.buf.len() - self.start >= max {
                let count = self.cut(&self.buf[self.start..self.start + max]);
                self.emit(count, out);
            }
            if self.start > 0 && self.start >= self.buf.len() / 2 {
                self.buf.drain(..self.start);
                self.start = 0;
            }
        }
    }

    /// Ends the stream; appends the remaining chunks to `out`.
    pub fn finish(mut self, out: &mut Vec<Chunk>) {
        while self.start < self.buf.len() {
            let count = self.cut(&self.buf[self.start..]);
            if count == 0 {
                break;
            }
            self.emit(count, out);
        }
    }

    /// Bytes buffered but not yet emitted.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

/// Chunks everything `reader` yields, reading 1 MiB at a time.
pub fn chunk_reader<R: Read>(
    mut reader: R,
    params: ChunkerParams,
    mut on_chunk: impl FnMut(Chunk) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut chunker = Chunker::new(params).map_err(std::io::Error::other)?;
    let mut block = vec![0u8; 1 << 20];
    let mut out = Vec::new();
    loop {
        let n = match reader.read(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        chunker.push(&block[..n], &mut out);
        for c in out.drain(..) {
            on_chunk(c)?;
        }
    }
    chunker.finish(&mut out);
    for c in out.drain(..) {
        on_chunk(c)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn small() -> ChunkerParams {
        ChunkerParams { min_size: 4096, avg_size: 16384, max_size: 65536 }
    }

    fn chunks_of(data: &[u8], params: ChunkerParams, piece: usize) -> Vec<Chunk> {
        let mut c = Chunker::new(params).unwrap();
        let mut out = Vec::new();
        for p in data.chunks(piece.max(1)) {
            c.push(p, &mut out);
        }
        c.finish(&mut out);
        out
    }

    #[test]
    fn boundaries_match_fastcdc_stream_cdc_for_any_push_size() {
        let data = pseudo_random(3 << 20, 42);
        let p = small();
        let reference: Vec<(u64, usize)> = v2020::StreamCDC::new(&data[..], p.min_size, p.avg_size, p.max_size)
            .map(|c| c.map(|c| (c.offset, c.length)).unwrap())
            .collect();
        for piece in [1usize, 1000, 4096, 65536, 1 << 20, 3 << 20] {
            let ours: Vec<(u64, usize)> = chunks_of(&data, p, piece).iter().map(|c| (c.offset, c.data.len())).collect();
            assert_eq!(ours, reference, "push size {piece}");
        }
    }

    #[test]
    fn chunks_reassemble_and_respect_bounds() {
        let data = pseudo_random(2 << 20, 7);
        let p = small();
        let chunks = chunks_of(&data, p, 12345);
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.data.iter().copied()).collect();
        assert_eq!(joined, data);
        for c in &chunks[..chunks.len() - 1] {
            assert!(c.data.len() >= p.min_size && c.data.len() <= p.max_size);
            assert_eq!(c.hash, hash_chunk(&c.data));
        }
    }

    #[test]
    fn empty_and_tiny_inputs() {
        assert!(chunks_of(&[], small(), 10).is_empty());
        let one = chunks_of(b"x", small(), 10);
        assert_eq!(one.len(), 1);
        assert_eq!(&one[0].data[..], b"x");
    }

    #[test]
    fn invalid_params_are_rejected() {
        assert!(Chunker::new(ChunkerParams { min_size: 2 << 20, avg_size: 4 << 20, max_size: 8 << 20 }).is_err());
        assert!(Chunker::new(ChunkerParams { min_size: 8192, avg_size: 4096, max_size: 65536 }).is_err());
        assert!(ChunkerParams::default().validate().is_ok());
    }
}
