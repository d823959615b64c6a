//! SHA-256 chunk hashing. The `sha2` crate detects SHA-NI at run time.

use sha2::{Digest, Sha256};
use tessera_proto::ChunkHash;

pub fn hash_chunk(data: &[u8]) -> ChunkHash {
    ChunkHash(Sha256::digest(data).into())
}

/// Incremental SHA-256 of a whole file, fed as chunks go by.
#[derive(Default, Clone)]
pub struct ContentHasher(Sha256);

impl ContentHasher {
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    pub fn finish(self) -> [u8; 32] {
        self.0.finalize().into()
    }
}

/// SHA-256 of a multipart object as S3 defines its composite checksum: the SHA-256
/// of the concatenated SHA-256s of its parts, fed with the content as it streams by.
#[derive(Clone)]
pub struct CompositeHasher {
    part_sizes: std::vec::IntoIter<u64>,
    left_in_part: u64,
    part: Sha256,
    parts: Sha256,
}

impl CompositeHasher {
    pub fn new(part_sizes: &[u64]) -> Self {
        let mut h = Self {
            part_sizes: part_sizes.to_vec().into_iter(),
            left_in_part: 0,
            part: Sha256::new(),
            parts: Sha256::new(),
        };
        h.next_part();
        h
    }

    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.left_in_part == 0 {
                // More bytes than the parts add up to: make the result wrong, not a panic.
                self.parts.update(data);
                return;
            }
            let take = data.len().min(usize::try_from(self.left_in_part).unwrap_or(usize::MAX));
            self.part.update(&data[..take]);
            self.left_in_part -= take as u64;
            data = &data[take..];
            if self.left_in_part == 0 {
                let part = std::mem::take(&mut self.part).finalize();
                self.parts.update(part);
                self.next_part();
            }
        }
    }

    /// Moves to the next non-empty part; empty parts contribute their hash at once.
    fn next_part(&mut self) {
        for size in self.part_sizes.by_ref() {
            if size > 0 {
                self.left_in_part = size;
                return;
            }
            self.parts.update(Sha256::digest(b""));
        }
    }

    pub fn finish(self) -> [u8; 32] {
        self.parts.finalize().into()
    }
}

/// SHA-256 of the concatenated part SHA-256s.
pub fn composite_sha256(part_sha256s: &[[u8; 32]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for part in part_sha256s {
        h.update(part);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vector() {
        assert_eq!(hash_chunk(b"abc").to_hex(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let mut h = ContentHasher::default();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), hash_chunk(b"abc").0);
    }

    #[test]
    fn composite_hash_of_streamed_parts_matches_the_parts_hashes() {
        let parts: [&[u8]; 4] = [b"hello ", b"", b"multipart ", b"world"];
        let expected = composite_sha256(&parts.map(|p| hash_chunk(p).0));
        let whole: Vec<u8> = parts.concat();
        // Fed in pieces that straddle part boundaries.
        for piece in [1, 3, 7, whole.len()] {
            let mut h = CompositeHasher::new(&parts.map(|p| p.len() as u64));
            for bytes in whole.chunks(piece) {
                h.update(bytes);
            }
            assert_eq!(h.finish(), expected, "pieces of {piece}");
        }
        let mut extra = CompositeHasher::new(&parts.map(|p| p.len() as u64));
        extra.update(&whole);
        extra.update(b"!");
        assert_ne!(extra.finish(), expected);
    }
}
