#!/usr/bin/env python3
"""Writes tessera-dashboard.json: the Grafana dashboard of a Tessera cluster.

Edit the panel list here and re-run (`python3 docs/grafana/generate.py`); the
cluster test `dashboard_uses_only_metrics_the_cluster_serves` checks that
every metric the dashboard queries exists.
"""
import json
import os

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}

ROWS = [
    ("Routers", [
        ("S3 requests/s by method and status", "sum by (method, status) (rate(tessera_router_s3_requests_total[1m]))", "{{method}} {{status}}", "reqps"),
        ("S3 latency p50 / p99", [
            ("histogram_quantile(0.5, sum by (le) (rate(tessera_router_s3_request_seconds_bucket[5m])))", "p50"),
            ("histogram_quantile(0.99, sum by (le) (rate(tessera_router_s3_request_seconds_bucket[5m])))", "p99"),
        ], None, "s"),
        ("gRPC calls/s by method", "sum by (rpc) (rate(tessera_rpc_requests_total{job=~\"$job\"}[1m]))", "{{rpc}}", "reqps"),
        ("gRPC latency p99 by method", "histogram_quantile(0.99, sum by (le, rpc) (rate(tessera_rpc_request_seconds_bucket{job=~\"$job\"}[5m])))", "{{rpc}}", "s"),
        ("Bytes in / out", [
            ("sum(rate(tessera_router_uploaded_bytes_total[1m]))", "new chunk data in"),
            ("sum(rate(tessera_router_downloaded_bytes_total[1m]))", "chunk data out"),
        ], None, "Bps"),
        ("Dedup hit ratio", "sum(rate(tessera_router_chunks_deduped_total[5m])) / clamp_min(sum(rate(tessera_router_chunks_deduped_total[5m])) + sum(rate(tessera_router_chunks_uploaded_total[5m])), 1e-9)", "dedup", "percentunit"),
        ("Bloom false-positive rate", "sum(rate(tessera_router_bloom_false_positives_total[5m])) / clamp_min(sum(rate(tessera_router_bloom_checks_total[5m])), 1e-9)", "false positives", "percentunit"),
        ("Degraded reads and displaced writes", [
            ("sum(rate(tessera_router_degraded_reads_total[1m]))", "degraded chunk reads/s"),
            ("sum(rate(tessera_router_fragments_displaced_total[1m]))", "fragments on fallback nodes/s"),
        ], None, "ops"),
        ("Metadata cache hit ratio", "sum(rate(tessera_router_metadata_cache_hits_total[5m])) / clamp_min(sum(rate(tessera_router_metadata_cache_hits_total[5m])) + sum(rate(tessera_router_metadata_cache_misses_total[5m])), 1e-9)", "hits", "percentunit"),
    ]),
    ("Metadata (Raft)", [
        ("Leader per group", "max by (group) (tessera_meta_raft_leader)", "group {{group}}", "none"),
        ("Term per group", "max by (group) (tessera_meta_raft_term)", "group {{group}}", "none"),
        ("Commits/s per group", "max by (group) (rate(tessera_meta_raft_commit_index[1m]))", "group {{group}}", "ops"),
        ("Apply lag", "max by (group, instance) (tessera_meta_raft_apply_lag)", "group {{group}} {{instance}}", "none"),
        ("Voters per group", "max by (group) (tessera_meta_raft_voters)", "group {{group}}", "none"),
    ]),
    ("Block nodes", [
        ("Fragments per node", "tessera_block_fragments", "{{instance}}", "none"),
        ("Fragment bytes per node", "tessera_block_fragment_bytes", "{{instance}}", "bytes"),
        ("Free disk per node", "tessera_block_disk_free_bytes", "{{instance}}", "bytes"),
        ("Requests/s by op and status", "sum by (op, status) (rate(tessera_block_requests_total[1m]))", "{{op}} {{status}}", "reqps"),
        ("Request latency p99 by op", "histogram_quantile(0.99, sum by (le, op) (rate(tessera_block_request_duration_seconds_bucket[5m])))", "{{op}}", "s"),
        ("Bytes received / sent", [
            ("sum(rate(tessera_block_received_bytes_total[1m]))", "received"),
            ("sum(rate(tessera_block_sent_bytes_total[1m]))", "sent"),
        ], None, "Bps"),
        ("Corrupt fragments", [
            ("sum(increase(tessera_block_corrupt_reads_total[1h]))", "corrupt reads (1h)"),
            ("sum(increase(tessera_block_scrub_corrupt_fragments_total[1h]))", "found by scrub (1h)"),
        ], None, "none"),
        ("Scrub progress", [
            ("sum(rate(tessera_block_scrub_examined_fragments_total[1m]))", "fragments verified/s"),
            ("sum(tessera_block_scrub_running)", "nodes scrubbing"),
        ], None, "none"),
    ]),
    ("Repair", [
        ("Under-replicated and lost chunks", [
            ("max(tessera_router_repair_under_replicated_chunks)", "under-replicated"),
            ("max(tessera_router_repair_lost_chunks)", "lost"),
        ], None, "none"),
        ("Repair work/s", [
            ("sum(rate(tessera_router_repair_fragments_rebuilt_total[5m]))", "rebuilt"),
            ("sum(rate(tessera_router_repair_fragments_copied_total[5m]))", "moved"),
            ("sum(rate(tessera_router_repair_fragments_removed_total[5m]))", "removed"),
        ], None, "ops"),
        ("Running pass", [
            ("max(tessera_router_repair_running)", "running"),
            ("max(tessera_router_repair_pass_chunks_examined)", "chunks examined"),
        ], None, "none"),
        ("Time since the last pass", "time() - max(tessera_router_repair_last_pass_end_timestamp_seconds)", "age", "s"),
    ]),
    ("Garbage collection", [
        ("Space given back", "sum(rate(tessera_router_gc_freed_bytes_total[5m]))", "freed", "Bps"),
        ("GC work/s", [
            ("sum(rate(tessera_router_gc_examined_fragments_total[5m]))", "examined"),
            ("sum(rate(tessera_router_gc_deleted_fragments_total[5m]))", "deleted"),
            ("sum(rate(tessera_router_gc_kept_recent_fragments_total[5m]))", "kept (touched recently)"),
            ("sum(rate(tessera_block_deleted_fragments_total[5m]))", "block-node deletes"),
        ], None, "ops"),
        ("Passes", [
            ("max(tessera_router_gc_running)", "running"),
            ("sum(increase(tessera_router_gc_failed_passes_total[1h]))", "failed (1h)"),
            ("max(tessera_router_gc_referenced_chunks)", "chunks referenced"),
        ], None, "none"),
        ("Time since the last GC pass", "time() - max(tessera_router_gc_last_pass_end_timestamp_seconds)", "age", "s"),
    ]),
]


def panel(pid, title, queries, legend, unit, x, y):
    if isinstance(queries, str):
        queries = [(queries, legend)]
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": 8, "h": 7},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [
            {"refId": chr(ord("A") + i), "datasource": DS, "expr": expr, "legendFormat": lf}
            for i, (expr, lf) in enumerate(queries)
        ],
    }


def dashboard():
    panels, pid, y = [], 1, 0
    for row_title, row in ROWS:
        panels.append({"id": pid, "type": "row", "title": row_title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        pid += 1
        y += 1
        for i, (title, queries, legend, unit) in enumerate(row):
            panels.append(panel(pid, title, queries, legend, unit, (i % 3) * 8, y + (i // 3) * 7))
            pid += 1
        y += ((len(row) + 2) // 3) * 7
    return {
        "title": "Tessera cluster",
        "uid": "tessera-cluster",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "tags": ["tessera", "storage"],
        "templating": {"list": [
            {"name": "DS_PROMETHEUS", "label": "Prometheus", "type": "datasource", "query": "prometheus"},
            {"name": "job", "label": "Job", "type": "query", "datasource": DS, "query": "label_values(tessera_rpc_requests_total, job)",
             "includeAll": True, "multi": True, "current": {"text": "All", "value": "$__all"}, "allValue": ".*"},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "tessera-dashboard.json")
    with open(out, "w") as f:
        json.dump(dashboard(), f, indent=2)
        f.write("\n")
    print(f"wrote {out}")
