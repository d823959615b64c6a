//! Prometheus metrics of a block node.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpStatus {
    pub op: &'static str,
    pub status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Op {
    pub op: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~26 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

#[derive(Clone)]
pub struct BlockMetrics {
    pub requests: Family<OpStatus, Counter>,
    pub latency: Family<Op, Histogram, fn() -> Histogram>,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub fragments: Gauge,
    pub fragment_bytes: Gauge,
    pub disk_free_bytes: Gauge,
    pub bloom_items: Gauge,
    pub corrupt_reads: Counter,
    pub scrub_examined: Counter,
    pub scrub_corrupt: Counter,
    pub scrub_running: Gauge,
    pub fragments_deleted: Counter,
    pub read_flushes: Counter,
    pub read_records_written: Counter,
    pub read_records_pending: Gauge,
}

impl BlockMetrics {
    pub fn new(registry: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            fragments: Gauge::default(),
            fragment_bytes: Gauge::default(),
            disk_free_bytes: Gauge::default(),
            bloom_items: Gauge::default(),
            corrupt_reads: Counter::default(),
            scrub_examined: Counter::default(),
            scrub_corrupt: Counter::default(),
            scrub_running: Gauge::default(),
            fragments_deleted: Counter::default(),
            read_flushes: Counter::default(),
            read_records_written: Counter::default(),
            read_records_pending: Gauge::default(),
        };
        let r = registry.sub_registry_with_prefix("tessera_block");
        r.register("requests", "gRPC requests by operation and outcome", m.requests.clone());
        r.register("request_duration_seconds", "gRPC request latency", m.latency.clone());
        r.register("received_bytes", "Fragment bytes received", m.bytes_in.clone());
        r.register("sent_bytes", "Fragment bytes sent", m.bytes_out.clone());
        r.register("fragments", "Fragments held", m.fragments.clone());
        r.register("fragment_bytes", "Bytes of fragments held", m.fragment_bytes.clone());
        r.register("disk_free_bytes", "Free bytes on the data dir's file system", m.disk_free_bytes.clone());
        r.register("bloom_items", "Chunk hashes in the Bloom filter", m.bloom_items.clone());
        r.register("corrupt_reads", "Reads that found a corrupt fragment", m.corrupt_reads.clone());
        r.register("scrub_examined_fragments", "Fragments verified by scrub", m.scrub_examined.clone());
        r.register("scrub_corrupt_fragments", "Corrupt fragments found by scrub", m.scrub_corrupt.clone());
        r.register("scrub_running", "1 while a scrub pass runs", m.scrub_running.clone());
        r.register(
            "deleted_fragments",
            "Fragments deleted (garbage collection, rebalance)",
            m.fragments_deleted.clone(),
        );
        r.register("read_flushes", "Batches of chunk read times written to disk", m.read_flushes.clone());
        r.register("read_records_written", "Chunk read-time records written to disk", m.read_records_written.clone());
        r.register(
            "read_records_pending",
            "Chunks read since the last read-time flush (records the next flush writes)",
            m.read_records_pending.clone(),
        );
        m
    }

    pub fn observe(&self, op: &'static str, status: &'static str, seconds: f64) {
        self.requests.get_or_create(&OpStatus { op, status }).inc();
        self.latency.get_or_create(&Op { op }).observe(seconds);
    }
}
