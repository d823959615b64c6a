//! Value encoding: one format byte, then postcard. Postcard is compact and deterministic
//! (same value → same bytes on every replica); the format byte leaves room for migrations.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::kv::KvRead;
use super::ModelError;

const FORMAT_V1: u8 = 1;

pub(crate) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, ModelError> {
    let mut out = vec![FORMAT_V1];
    let body = postcard::to_allocvec(value).map_err(|e| ModelError::Corrupt(format!("encode: {e}")))?;
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ModelError> {
    match bytes.split_first() {
        Some((&FORMAT_V1, body)) => postcard::from_bytes(body).map_err(|e| ModelError::Corrupt(format!("{what}: {e}"))),
        Some((format, _)) => Err(ModelError::Corrupt(format!("{what}: unknown format {format}"))),
        None => Err(ModelError::Corrupt(format!("{what}: empty value"))),
    }
}

pub(crate) fn get_decoded<T: DeserializeOwned>(
    kv: &dyn KvRead,
    key: &[u8],
    what: &str,
) -> Result<Option<T>, ModelError> {
    match kv.get(key)? {
        Some(bytes) => decode(&bytes, what).map(Some),
        None => Ok(None),
    }
}

pub(crate) fn encode_u64(v: u64) -> [u8; 8] {
    v.to_be_bytes()
}

pub(crate) fn decode_u64(bytes: &[u8], what: &str) -> Result<u64, ModelError> {
    let array: [u8; 8] = bytes.try_into().map_err(|_| ModelError::Corrupt(format!("{what}: expected 8 bytes")))?;
    Ok(u64::from_be_bytes(array))
}

/// Reads a u64 counter; absent = 0.
pub(crate) fn get_u64(kv: &dyn KvRead, key: &[u8], what: &str) -> Result<u64, ModelError> {
    match kv.get(key)? {
        Some(bytes) => decode_u64(&bytes, what),
        None => Ok(0),
    }
}
