//! Key and value encoding of fragments in RocksDB: the one place that knows
//! the byte layout.
//!
//! * key: chunk SHA-256 (32 bytes) followed by the fragment index (1 byte), so
//!   all fragments of a chunk are adjacent and a prefix seek finds them;
//! * the `index` column family maps a key to a small [`FragmentMeta`];
//! * the `fragments` column family maps the same key to the raw bytes.

use tessera_proto::ChunkHash;

use crate::error::StoreError;

pub const KEY_LEN: usize = ChunkHash::LEN + 1;

/// (chunk hash, fragment index): the address of one fragment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FragmentKey {
    pub chunk: ChunkHash,
    pub index: u8,
}

impl FragmentKey {
    pub fn new(chunk: ChunkHash, index: u8) -> Self {
        Self { chunk, index }
    }

    pub fn encode(&self) -> [u8; KEY_LEN] {
        let mut k = [0u8; KEY_LEN];
        k[..32].copy_from_slice(self.chunk.as_bytes());
        k[32] = self.index;
        k
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != KEY_LEN {
            return Err(StoreError::Corrupt(format!("stored key has length {}", bytes.len())));
        }
        let chunk = ChunkHash::from_slice(&bytes[..32]).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(Self { chunk, index: bytes[32] })
    }

    /// Builds a key from wire values, validating them.
    pub fn from_wire(chunk_hash: &[u8], index: u32) -> Result<Self, StoreError> {
        let chunk = ChunkHash::from_slice(chunk_hash).map_err(|e| StoreError::InvalidArgument(e.to_string()))?;
        let index = u8::try_from(index)
            .map_err(|_| StoreError::InvalidArgument(format!("fragment index {index} is out of range 0..=255")))?;
        Ok(Self { chunk, index })
    }
}

/// What the node records about a fragment beside its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentMeta {
    pub data_shards: u8,
    pub parity_shards: u8,
    pub chunk_len: u64,
    pub fragment_len: u64,
    /// CRC-32C of the fragment bytes, verified on every read.
    pub crc32c: u32,
    /// Seconds since the Unix epoch when the fragment was first stored.
    pub stored_at: u64,
}

const META_VERSION: u8 = 1;
const META_LEN: usize = 1 + 1 + 1 + 4 + 8 + 8 + 8;

impl FragmentMeta {
    pub fn encode(&self) -> [u8; META_LEN] {
        let mut v = [0u8; META_LEN];
        v[0] = META_VERSION;
        v[1] = self.data_shards;
        v[2] = self.parity_shards;
        v[3..7].copy_from_slice(&self.crc32c.to_le_bytes());
        v[7..15].copy_from_slice(&self.chunk_len.to_le_bytes());
        v[15..23].copy_from_slice(&self.fragment_len.to_le_bytes());
        v[23..31].copy_from_slice(&self.stored_at.to_le_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, StoreError> {
        if bytes.len() != META_LEN || bytes[0] != META_VERSION {
            return Err(StoreError::Corrupt(format!(
                "fragment metadata has length {} and version {:?}",
                bytes.len(),
                bytes.first()
            )));
        }
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&bytes[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let mut crc = [0u8; 4];
        crc.copy_from_slice(&bytes[3..7]);
        Ok(Self {
            data_shards: bytes[1],
            parity_shards: bytes[2],
            crc32c: u32::from_le_bytes(crc),
            chunk_len: u64_at(7),
            fragment_len: u64_at(15),
            stored_at: u64_at(23),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_meta_round_trip() {
        let key = FragmentKey::new(ChunkHash([9; 32]), 5);
        assert_eq!(FragmentKey::decode(&key.encode()).unwrap(), key);
        let meta = FragmentMeta {
            data_shards: 4,
            parity_shards: 2,
            chunk_len: 4 << 20,
            fragment_len: 1 << 20,
            crc32c: 0xdead_beef,
            stored_at: 1_700_000_000,
        };
        assert_eq!(FragmentMeta::decode(&meta.encode()).unwrap(), meta);
        assert!(FragmentMeta::decode(&[1, 2, 3]).is_err());
        assert!(FragmentKey::from_wire(&[0; 31], 0).is_err());
        assert!(FragmentKey::from_wire(&[0; 32], 256).is_err());
    }
}
