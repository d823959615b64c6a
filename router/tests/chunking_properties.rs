//! Content-defined chunking keeps edits local: a 1-byte insert in the middle
//! of 100 MiB changes at most 2 chunks, with the production chunk sizes.

use std::collections::HashSet;

use rand::{RngCore, SeedableRng};
use tessera_router::codec::{Chunker, ChunkerParams};

fn chunk_hashes(data: &[u8]) -> Vec<tessera_proto::ChunkHash> {
    let mut chunker = Chunker::new(ChunkerParams::default()).unwrap();
    let mut out = Vec::new();
    for piece in data.chunks(1 << 20) {
        chunker.push(piece, &mut out);
    }
    chunker.finish(&mut out);
    out.into_iter().map(|c| c.hash).collect()
}

#[test]
fn one_byte_insert_in_the_middle_of_100_mib_changes_at_most_two_chunks() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x7e55e7a);
    let mut data = vec![0u8; 100 << 20];
    rng.fill_bytes(&mut data);
    let before = chunk_hashes(&data);
    for (i, at) in [data.len() / 2, data.len() / 3 + 12345, 1].into_iter().enumerate() {
        let mut edited = data.clone();
        edited.insert(at, 0x5a ^ i as u8);
        let after = chunk_hashes(&edited);
        let old: HashSet<_> = before.iter().collect();
        let new_chunks = after.iter().filter(|h| !old.contains(h)).count();
        assert!(before.len() > 15, "expected many chunks, got {}", before.len());
        assert!(new_chunks <= 2, "insert at {at}: {new_chunks} of {} chunks changed", after.len());
    }
}
