//! Throughput of the data-path primitives next to this machine's raw limits:
//! memcpy, SHA-256, FastCDC, Reed–Solomon encode/reconstruct, zstd of a chunk,
//! Bloom filter.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{RngCore, SeedableRng};
use tessera_proto::ChunkHash;
use tessera_router::codec::{hash_chunk, Chunker, ChunkerParams, ErasureCode};

fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(1).fill_bytes(&mut v);
    v
}

fn raw_limits(c: &mut Criterion) {
    let data = random(64 << 20);
    let mut g = c.benchmark_group("raw");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    let mut dst = vec![0u8; data.len()];
    g.bench_function("memcpy_64MiB", |b| b.iter(|| dst.copy_from_slice(black_box(&data))));
    g.bench_function("loopback_tcp_64MiB", |b| b.iter(|| loopback_transfer(black_box(&data))));
    g.finish();
}

/// Sends `data` over a fresh TCP connection on 127.0.0.1 to a thread that reads
/// it all: the ceiling for anything Tessera moves between its processes.
fn loopback_transfer(data: &[u8]) -> usize {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let reader = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().expect("accept");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return total,
                Ok(n) => total += n,
            }
        }
    });
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_nodelay(true).expect("nodelay");
    for piece in data.chunks(1 << 20) {
        conn.write_all(piece).expect("write");
    }
    drop(conn);
    reader.join().expect("reader")
}

fn sha256(c: &mut Criterion) {
    let data = random(4 << 20);
    let mut g = c.benchmark_group("sha256");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.bench_function("4MiB", |b| b.iter(|| hash_chunk(black_box(&data))));
    g.finish();
}

fn fastcdc(c: &mut Criterion) {
    let data = random(64 << 20);
    let mut g = c.benchmark_group("fastcdc");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    // Boundaries only (the library's own cut loop) and our push chunker, which
    // also hashes every chunk with SHA-256.
    g.bench_function("cut_only_64MiB", |b| {
        let p = ChunkerParams::default();
        b.iter(|| fastcdc::v2020::FastCDC::new(black_box(&data), p.min_size, p.avg_size, p.max_size).count())
    });
    g.bench_function("chunk_and_hash_64MiB", |b| {
        b.iter(|| {
            let mut chunker = Chunker::new(ChunkerParams::default()).unwrap();
            let mut out = Vec::new();
            for piece in data.chunks(1 << 20) {
                chunker.push(piece, &mut out);
            }
            chunker.finish(&mut out);
            out.len()
        })
    });
    g.finish();
}

fn reed_solomon(c: &mut Criterion) {
    let chunk = random(4 << 20);
    let mut g = c.benchmark_group("reed_solomon");
    g.throughput(Throughput::Bytes(chunk.len() as u64));
    for (k, m) in [(4usize, 2usize), (8, 4)] {
        let code = ErasureCode::new(k, m).unwrap();
        g.bench_with_input(BenchmarkId::new("encode_4MiB", format!("{k}+{m}")), &chunk, |b, chunk| {
            b.iter(|| code.encode(black_box(chunk)).unwrap())
        });
        let frags = code.encode(&chunk).unwrap();
        g.bench_with_input(BenchmarkId::new("reconstruct_4MiB_lost_m_data", format!("{k}+{m}")), &frags, |b, frags| {
            b.iter(|| {
                let mut present: Vec<Option<Vec<u8>>> = frags.iter().map(|f| Some(f.to_vec())).collect();
                for slot in present.iter_mut().take(m) {
                    *slot = None;
                }
                code.decode(present, chunk.len()).unwrap()
            })
        });
    }
    g.finish();
}

/// zstd of one chunk, as a compressing storage tier codes it: log-like text
/// (compresses well) and random bytes (does not).
fn zstd_chunk(c: &mut Criterion) {
    let text: Vec<u8> = b"2026-12-01T18:00:00Z INFO tessera request served user=alice bytes=4096 status=200\n"
        .iter()
        .copied()
        .cycle()
        .take(4 << 20)
        .collect();
    let mut g = c.benchmark_group("zstd");
    g.throughput(Throughput::Bytes(4 << 20));
    g.sample_size(10);
    for (name, chunk) in [("text", text), ("random", random(4 << 20))] {
        g.bench_with_input(BenchmarkId::new("compress_4MiB", name), &chunk, |b, chunk| {
            b.iter(|| tessera_router::codec::compress::compress(black_box(chunk)).unwrap())
        });
        let frame = tessera_router::codec::compress::compress(&chunk).unwrap();
        g.bench_with_input(BenchmarkId::new("decompress_4MiB", name), &frame, |b, frame| {
            b.iter(|| tessera_router::codec::compress::decompress(black_box(frame)).unwrap())
        });
    }
    g.finish();
}

fn bloom(c: &mut Criterion) {
    let hashes: Vec<ChunkHash> = (0..100_000u64).map(|i| hash_chunk(&i.to_le_bytes())).collect();
    let mut g = c.benchmark_group("bloom");
    g.throughput(Throughput::Elements(hashes.len() as u64));
    g.bench_function("insert_100k", |b| {
        b.iter(|| {
            let mut f = tessera_block::bloom::new_filter(1_000_000);
            for h in &hashes {
                f.insert(h.as_bytes());
            }
            f
        })
    });
    let mut f = tessera_block::bloom::new_filter(1_000_000);
    for h in &hashes {
        f.insert(h.as_bytes());
    }
    g.bench_function("contains_100k", |b| b.iter(|| hashes.iter().filter(|h| f.contains(h.as_bytes())).count()));
    g.finish();
}

criterion_group!(benches, raw_limits, sha256, fastcdc, reed_solomon, zstd_chunk, bloom);
criterion_main!(benches);
