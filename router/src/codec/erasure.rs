//! Reed–Solomon k+m coding of chunks into fragments.
//!
//! A chunk of `len` bytes is split into k data fragments of `ceil(len / k)`
//! bytes (the last one zero-padded) and m parity fragments of the same size.
//! Any k of the k+m fragments rebuild the chunk; the chunk length, stored with
//! every fragment, strips the padding.

use bytes::Bytes;
use reed_solomon_erasure::galois_8::ReedSolomon;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ErasureError {
    #[error("invalid erasure code {k}+{m}: {why}")]
    InvalidCode { k: usize, m: usize, why: String },
    #[error("only {available} of the {needed} fragments needed are available")]
    TooFewFragments { available: usize, needed: usize },
    #[error("fragments have inconsistent sizes")]
    SizeMismatch,
    #[error("reconstruction failed: {0}")]
    Reconstruct(String),
}

pub struct ErasureCode {
    k: usize,
    m: usize,
    rs: ReedSolomon,
}

impl std::fmt::Debug for ErasureCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ErasureCode({}+{})", self.k, self.m)
    }
}

impl ErasureCode {
    pub fn new(k: usize, m: usize) -> Result<Self, ErasureError> {
        if k == 0 || k + m > 255 {
            return Err(ErasureError::InvalidCode { k, m, why: "need 1 <= k and k + m <= 255".into() });
        }
        // The crate needs at least one parity shard; k+0 is plain striping.
        let rs =
            ReedSolomon::new(k, m.max(1)).map_err(|e| ErasureError::InvalidCode { k, m, why: format!("{e:?}") })?;
        Ok(Self { k, m, rs })
    }

    pub fn data_shards(&self) -> usize {
        self.k
    }

    pub fn parity_shards(&self) -> usize {
        self.m
    }

    pub fn total_shards(&self) -> usize {
        self.k + self.m
    }

    /// Size of each fragment for a chunk of `chunk_len` bytes.
    pub fn fragment_len(&self, chunk_len: usize) -> usize {
        chunk_len.div_ceil(self.k).max(1)
    }

    /// Splits and encodes `chunk` into k + m fragments (data first).
    pub fn encode(&self, chunk: &[u8]) -> Result<Vec<Bytes>, ErasureError> {
        let frag_len = self.fragment_len(chunk.len());
        let total = self.k + self.m.max(1);
        let mut shards: Vec<Vec<u8>> = Vec::with_capacity(total);
        for i in 0..self.k {
            let start = (i * frag_len).min(chunk.len());
            let end = ((i + 1) * frag_len).min(chunk.len());
            let mut s = Vec::with_capacity(frag_len);
            s.extend_from_slice(&chunk[start..end]);
            s.resize(frag_len, 0);
            shards.push(s);
        }
        shards.resize_with(total, || vec![0u8; frag_len]);
        self.rs.encode(&mut shards).map_err(|e| ErasureError::Reconstruct(format!("{e:?}")))?;
        shards.truncate(self.k + self.m);
        Ok(shards.into_iter().map(Bytes::from).collect())
    }

    /// Rebuilds the chunk from the fragments present (`None` = missing or
    /// corrupt). Needs any k of them.
    pub fn decode(&self, mut fragments: Vec<Option<Vec<u8>>>, chunk_len: usize) -> Result<Vec<u8>, ErasureError> {
        if fragments.len() != self.k + self.m {
            return Err(ErasureError::InvalidCode {
                k: self.k,
                m: self.m,
                why: format!("got {} fragment slots", fragments.len()),
            });
        }
        let available = fragments.iter().filter(|f| f.is_some()).count();
        if available < self.k {
            return Err(ErasureError::TooFewFragments { available, needed: self.k });
        }
        let frag_len = self.fragment_len(chunk_len);
        if fragments.iter().flatten().any(|f| f.len() != frag_len) {
            return Err(ErasureError::SizeMismatch);
        }
        if fragments[..self.k].iter().any(Option::is_none) {
            if self.m == 0 {
                return Err(ErasureError::TooFewFragments { available, needed: self.k });
            }
            self.rs.reconstruct_data(&mut fragments).map_err(|e| ErasureError::Reconstruct(format!("{e:?}")))?;
        }
        let mut out = Vec::with_capacity(frag_len * self.k);
        for f in fragments.into_iter().take(self.k) {
            out.extend_from_slice(&f.ok_or(ErasureError::Reconstruct("data fragment missing".into()))?);
        }
        out.truncate(chunk_len);
        Ok(out)
    }

    /// Rebuilds every missing fragment (data and parity) in place: what repair
    /// needs to restore full redundancy.
    pub fn rebuild_all(&self, fragments: &mut [Option<Vec<u8>>]) -> Result<(), ErasureError> {
        let available = fragments.iter().filter(|f| f.is_some()).count();
        if available < self.k {
            return Err(ErasureError::TooFewFragments { available, needed: self.k });
        }
        if self.m == 0 {
            return Ok(());
        }
        self.rs.reconstruct(fragments).map_err(|e| ErasureError::Reconstruct(format!("{e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any k of the k+m fragments rebuild the chunk, for random data and codes.
        #[test]
        fn any_k_fragments_reconstruct(
            data in proptest::collection::vec(any::<u8>(), 1..20_000),
            k in 1usize..10,
            m in 0usize..6,
            drop_seed in any::<u64>(),
        ) {
            let code = ErasureCode::new(k, m).unwrap();
            let frags = code.encode(&data).unwrap();
            prop_assert_eq!(frags.len(), k + m);
            // Drop m fragments chosen by the seed.
            let mut present: Vec<Option<Vec<u8>>> = frags.iter().map(|f| Some(f.to_vec())).collect();
            let mut s = drop_seed | 1;
            let mut dropped = 0;
            while dropped < m {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                let i = (s % (k + m) as u64) as usize;
                if present[i].is_some() {
                    present[i] = None;
                    dropped += 1;
                }
            }
            let back = code.decode(present.clone(), data.len()).unwrap();
            prop_assert_eq!(&back, &data);
            let mut all = present;
            code.rebuild_all(&mut all).unwrap();
            for (i, f) in all.iter().enumerate() {
                prop_assert_eq!(f.as_deref(), Some(&frags[i][..]));
            }
        }
    }

    #[test]
    fn every_k_subset_of_4_plus_2_reconstructs() {
        let data: Vec<u8> = (0..100_003u32).map(|i| (i * 7 + i / 13) as u8).collect();
        let code = ErasureCode::new(4, 2).unwrap();
        let frags = code.encode(&data).unwrap();
        for a in 0..6 {
            for b in a + 1..6 {
                let mut present: Vec<Option<Vec<u8>>> = frags.iter().map(|f| Some(f.to_vec())).collect();
                present[a] = None;
                present[b] = None;
                assert_eq!(code.decode(present, data.len()).unwrap(), data, "lost {a} and {b}");
            }
        }
    }

    #[test]
    fn too_few_fragments_is_an_error_not_wrong_data() {
        let code = ErasureCode::new(4, 2).unwrap();
        let frags = code.encode(b"hello world, this is a chunk").unwrap();
        let mut present: Vec<Option<Vec<u8>>> = frags.iter().map(|f| Some(f.to_vec())).collect();
        present[0] = None;
        present[3] = None;
        present[5] = None;
        assert_eq!(code.decode(present, 28), Err(ErasureError::TooFewFragments { available: 3, needed: 4 }));
        assert!(ErasureCode::new(0, 2).is_err());
        assert!(ErasureCode::new(200, 100).is_err());
    }
}
