//! zstd compression of whole chunks, for storage tiers that compress.
//!
//! Uses `zstd-safe` without its `std` feature on purpose: RocksDB links the same
//! zstd library, and turning on another feature of it would rebuild RocksDB.

/// Compression level: cold data is written once and read rarely, but moves run
/// on routers that also serve traffic.
const LEVEL: i32 = 3;

/// Decompressed frames larger than this are refused (no chunk is this large;
/// a corrupt or hostile frame must not make the router allocate without bound).
pub const MAX_DECOMPRESSED: u64 = 64 << 20;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CompressError {
    #[error("zstd: {0}")]
    Zstd(&'static str),
    #[error("zstd frame without a content size")]
    NoContentSize,
    #[error("zstd frame of {0} bytes exceeds the {MAX_DECOMPRESSED}-byte limit")]
    TooLarge(u64),
    #[error("zstd frame decompressed to {got} bytes, its header says {expected}")]
    SizeMismatch { got: usize, expected: u64 },
}

/// One zstd frame holding `data` (with its content size in the header).
pub fn compress(data: &[u8]) -> Result<Vec<u8>, CompressError> {
    let mut out = vec![0u8; zstd_safe::compress_bound(data.len())];
    let written = zstd_safe::compress(out.as_mut_slice(), data, LEVEL)
        .map_err(|c| CompressError::Zstd(zstd_safe::get_error_name(c)))?;
    out.truncate(written);
    Ok(out)
}

/// The bytes of one frame made by [`compress`].
pub fn decompress(frame: &[u8]) -> Result<Vec<u8>, CompressError> {
    let size = zstd_safe::get_frame_content_size(frame)
        .map_err(|_| CompressError::Zstd("not a zstd frame"))?
        .ok_or(CompressError::NoContentSize)?;
    if size > MAX_DECOMPRESSED {
        return Err(CompressError::TooLarge(size));
    }
    let mut out = vec![0u8; size as usize];
    let got = zstd_safe::decompress(out.as_mut_slice(), frame)
        .map_err(|c| CompressError::Zstd(zstd_safe::get_error_name(c)))?;
    if got as u64 != size {
        return Err(CompressError::SizeMismatch { got, expected: size });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_compression_of_redundant_data() {
        let text: Vec<u8> = b"tessera cold tier ".iter().copied().cycle().take(1 << 20).collect();
        let frame = compress(&text).unwrap();
        assert!(frame.len() < text.len() / 10, "{} bytes", frame.len());
        assert_eq!(decompress(&frame).unwrap(), text);
        assert_eq!(decompress(&compress(b"").unwrap()).unwrap(), b"");
    }

    #[test]
    fn damaged_frames_are_errors() {
        let frame = compress(&vec![7u8; 100_000]).unwrap();
        assert!(decompress(&frame[..frame.len() / 2]).is_err());
        assert!(decompress(b"not zstd at all").is_err());
        let mut flipped = frame.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 0xff;
        // A flipped byte either fails to decode or decodes to other bytes (the
        // chunk hash check catches those); it never panics.
        if let Ok(bytes) = decompress(&flipped) {
            assert_ne!(bytes, vec![7u8; 100_000]);
        }
    }
}
