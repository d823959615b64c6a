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
}
