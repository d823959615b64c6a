//! `ChunkHash`: the content address of a chunk (its SHA-256).

use std::fmt;

/// The SHA-256 of a chunk's bytes: its identity everywhere in Tessera.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct ChunkHash(pub [u8; 32]);

/// A byte string that is not a valid chunk hash.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChunkHashError {
    #[error("chunk hash must be 32 bytes, got {0}")]
    WrongLength(usize),
    #[error("chunk hash is not 64 hex digits: {0}")]
    BadHex(String),
}

impl ChunkHash {
    pub const LEN: usize = 32;

    pub fn from_slice(bytes: &[u8]) -> Result<Self, ChunkHashError> {
        let arr: [u8; 32] = bytes.try_into().map_err(|_| ChunkHashError::WrongLength(bytes.len()))?;
        Ok(Self(arr))
    }

    pub fn from_hex(s: &str) -> Result<Self, ChunkHashError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| ChunkHashError::BadHex(s.to_owned()))?;
        Ok(Self(out))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChunkHash({})", self.to_hex())
    }
}

impl fmt::Display for ChunkHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_length_checks() {
        let h = ChunkHash([7u8; 32]);
        assert_eq!(ChunkHash::from_hex(&h.to_hex()), Ok(h));
        assert_eq!(ChunkHash::from_slice(&[1, 2, 3]), Err(ChunkHashError::WrongLength(3)));
        assert!(matches!(ChunkHash::from_hex("zz"), Err(ChunkHashError::BadHex(_))));
    }
}
