//! The console's HTML: a layout with a small inline stylesheet (no scripts, no
//! external assets), and the overview, users, errors and login pages. Every value
//! that comes from the cluster or a client is escaped.

use serde_json::Value;

use super::errors::RecentEvent;
use super::jobs::{JobRun, JobState};

pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

/// A JSON value as escaped text (strings without quotes; null as "—").
fn v(value: &Value) -> String {
    match value {
        Value::Null => "—".into(),
        Value::String(s) => escape(s),
        other => escape(&other.to_string()),
    }
}

pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

fn vb(value: &Value) -> String {
    value.as_u64().map_or("—".into(), bytes)
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time_ms(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => ms.to_string(),
    }
}

fn vt(value: &Value) -> String {
    value.as_i64().map_or("—".into(), time_ms)
}

const STYLE: &str = "body{font-family:sans-serif;margin:0;color:#222}header{background:#234;color:#fff;padding:.6em 1em;\
display:flex;gap:1.5em;align-items:center}header a{color:#cde}main{padding:0 1em 2em;max-width:70em}\
table{border-collapse:collapse;margin:.4em 0 1em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
th{background:#eef}.up{color:#070}.down{color:#b00;font-weight:bold}.notice{background:#ffd;padding:.5em;border:1px solid #cc9}\
.error{background:#fee;padding:.5em;border:1px solid #c99}form.inline{display:inline}button{padding:.3em 1em;margin-right:.6em}\
dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:bold}";

/// A whole page; `refresh_secs` adds a meta refresh (while a pass runs).
pub fn layout(title: &str, csrf: Option<&str>, refresh_secs: Option<u32>, body: &str) -> String {
    let refresh = refresh_secs.map(|s| format!("<meta http-equiv=\"refresh\" content=\"{s}\">")).unwrap_or_default();
    let nav = match csrf {
        Some(token) => format!(
            "<a href=\"/\">Overview</a><a href=\"/users\">Users</a><a href=\"/errors\">Recent errors</a>\
             <a href=\"/api/overview\">JSON</a><form class=\"inline\" method=\"post\" action=\"/logout\">\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\"><button>Log out</button></form>",
            escape(token)
        ),
        None => String::new(),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">{refresh}<title>{} · Tessera console</title>\
         <style>{STYLE}</style></head><body><header><strong>Tessera console</strong>{nav}</header>\
         <main><h1>{}</h1>{body}</main></body></html>",
        escape(title),
        escape(title)
    )
}

pub fn login(message: Option<&str>) -> String {
    let note = message.map(|m| format!("<p class=\"error\" id=\"login-error\">{}</p>", escape(m))).unwrap_or_default();
    layout(
        "Log in",
        None,
        None,
        &format!(
            "{note}<form method=\"post\" action=\"/login\"><label>Admin password \
             <input type=\"password\" name=\"password\" id=\"password\" autofocus></label> \
             <button type=\"submit\" id=\"login\">Log in</button></form>"
        ),
    )
}

fn up_down(up: &Value) -> &'static str {
    if up == true {
        "<span class=\"up\">up</span>"
    } else {
        "<span class=\"down\">DOWN</span>"
    }
}

fn job_line(run: &JobRun) -> String {
    let state = match (&run.finished_at_ms, &run.error) {
        (None, _) => "running".to_owned(),
        (Some(_), None) => "finished".to_owned(),
        (Some(_), Some(_)) => "failed".to_owned(),
    };
    let detail = run.error.as_deref().unwrap_or(&run.progress);
    format!(
        "<p id=\"console-job\" data-kind=\"{}\" data-state=\"{state}\">{} pass started {}: <strong id=\"console-job-state\">{state}</strong> — {}</p>",
        match run.kind {
            super::jobs::JobKind::Repair => "repair",
            super::jobs::JobKind::Gc => "gc",
        },
        run.kind.label(),
        time_ms(run.started_at_ms),
        escape(detail)
    )
}

/// What the overview shows, gathered by the route.
pub struct Overview<'a> {
    pub status: &'a Value,
    pub jobs: &'a JobState,
    /// (repair interval, repair running, gc interval, gc running) of the background jobs.
    pub background: (u64, bool, u64, bool),
    pub csrf: &'a str,
    pub notice: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// The summary list, and the node, leader and shard tables.
fn health(status: &Value) -> (String, String) {
    let s = &status["summary"];
    let under = match s["under_replicated_chunks"].as_u64() {
        Some(n) => n.to_string(),
        None => "unknown (no repair pass yet)".into(),
    };
    let out = format!(
        "<h2>Health</h2><dl id=\"health\"><dt>Placement epoch</dt><dd id=\"epoch\">{}</dd>\
         <dt>Metadata nodes</dt><dd><span id=\"meta-up\">{}</span> up, <span id=\"meta-down\">{}</span> down</dd>\
         <dt>Block nodes</dt><dd><span id=\"block-up\">{}</span> up, <span id=\"block-down\">{}</span> down</dd>\
         <dt>Capacity</dt><dd><span id=\"fragment-bytes\" data-bytes=\"{}\">{}</span> of fragments · \
         <span id=\"disk-free\" data-bytes=\"{}\">{}</span> free of <span id=\"disk-total\" data-bytes=\"{}\">{}</span></dd>\
         <dt>Under-replicated chunks</dt><dd id=\"under-replicated\">{}</dd></dl>",
        v(&status["epoch"]),
        v(&s["meta_nodes_up"]),
        v(&s["meta_nodes_down"]),
        v(&s["block_nodes_up"]),
        v(&s["block_nodes_down"]),
        v(&s["fragment_bytes"]),
        vb(&s["fragment_bytes"]),
        v(&s["disk_free_bytes"]),
        vb(&s["disk_free_bytes"]),
        v(&s["disk_total_bytes"]),
        vb(&s["disk_total_bytes"]),
        escape(&under)
    );
    let summary = out;
    let mut out = String::new();
    out.push_str("<h2>Metadata nodes and Raft leaders</h2><table id=\"meta-nodes\"><tr><th>Node</th><th>Address</th><th>State</th></tr>");
    for m in status["meta_nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} {}</td></tr>",
            v(&m["node"]),
            v(&m["addr"]),
            up_down(&m["up"]),
            m["error"].as_str().map(escape).unwrap_or_default()
        ));
    }
    out.push_str("</table><table id=\"leaders\"><tr><th>Raft group</th><th>Leader</th></tr>");
    for g in s["leaders"].as_array().into_iter().flatten() {
        let leader = g["leader"].as_u64().map_or("<span class=\"down\">none</span>".into(), |l| format!("node {l}"));
        out.push_str(&format!("<tr><td>{}</td><td>{leader}</td></tr>", v(&g["group"])));
    }
    out.push_str("</table><h2>Block nodes</h2><table id=\"block-nodes\"><tr><th>Id</th><th>Address</th><th>Zone</th><th>State</th>\
        <th>Fragments</th><th>Used</th><th>Free</th><th>Disk</th></tr>");
    for b in status["block_nodes"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v(&b["id"]),
            v(&b["addr"]),
            v(&b["zone"]),
            up_down(&b["up"]),
            v(&b["fragments"]),
            vb(&b["bytes"]),
            vb(&b["disk_free"]),
            vb(&b["disk_total"])
        ));
    }
    out.push_str("</table><h2>Shard map</h2><table id=\"shards\"><tr><th>Group</th><th>Replicas (meta nodes)</th><th>Vnodes</th></tr>");
    for sh in status["shards"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            v(&sh["group"]),
            v(&sh["replicas"]),
            v(&sh["vnodes"])
        ));
    }
    out.push_str(
        "</table><h2>User moves in progress</h2><table id=\"user-moves\"><tr><th>User</th><th>From</th>\
        <th>To</th><th>State</th><th>Copied</th><th>Started</th><th>By</th></tr>",
    );
    for m in status["user_moves"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} records, {} bytes</td><td>{}</td><td>{}</td></tr>",
            v(&m["user_id"]),
            v(&m["from"]),
            v(&m["to"]),
            v(&m["state"]),
            v(&m["copied_records"]),
            v(&m["copied_bytes"]),
            vt(&m["started_at_ms"]),
            v(&m["by"])
        ));
    }
    out.push_str("</table>");
    (summary, out)
}

/// The latest tiering pass, or why there is none.
fn tiering_line(status: &Value) -> String {
    if status["tiers"].as_array().is_none_or(|t| t.is_empty()) {
        return "tiering: not configured".into();
    }
    let t = &status["last_tier_pass"];
    if !t.is_object() {
        return "no tiering pass recorded yet".into();
    }
    format!(
        "last pass by {} started {}, phase {}, {}: chunks examined {}, demoted {}, promoted {} · {} · \
         leftovers cleaned {}, stale moves {}, errors {}",
        v(&t["by"]),
        vt(&t["started_at_ms"]),
        v(&t["phase"]),
        if t["finished_at_ms"].is_null() {
            "not finished".to_owned()
        } else {
            format!("finished {}", vt(&t["finished_at_ms"]))
        },
        v(&t["chunks_examined"]),
        v(&t["chunks_demoted"]),
        v(&t["chunks_promoted"]),
        moved_with_rate(t),
        v(&t["copies_cleaned"]),
        v(&t["moves_stale"]),
        t["errors"].as_array().map_or(0, |e| e.len())
    )
}

/// Milliseconds a pass record covers so far (start to its last update).
fn elapsed_ms(record: &Value) -> u64 {
    let ms = record["updated_at_ms"].as_i64().unwrap_or(0) - record["started_at_ms"].as_i64().unwrap_or(0);
    u64::try_from(ms).unwrap_or(0)
}

/// " (N/s)" for counter `field` of a pass record, over its run so far.
fn per_second(record: &Value, field: &str) -> String {
    match (record[field].as_u64(), elapsed_ms(record)) {
        (Some(n), ms) if ms > 0 => format!(" ({}/s)", n * 1000 / ms),
        _ => String::new(),
    }
}

/// Bytes a tiering pass moved, and at what rate over its run so far.
fn moved_with_rate(t: &Value) -> String {
    let moved = t["bytes_moved"].as_u64().unwrap_or(0);
    match elapsed_ms(t) {
        0 => format!("{} moved", bytes(moved)),
        ms => format!("{} moved ({}/s)", bytes(moved), bytes(moved * 1000 / ms)),
    }
}

/// Capacity per storage tier (nothing when tiering is not configured).
fn tier_table(status: &Value) -> String {
    let Some(tiers) = status["tiers"].as_array().filter(|t| !t.is_empty()) else { return String::new() };
    let mut out = "<table id=\"tiers\"><tr><th>Tier</th><th>Label</th><th>Nodes up</th><th>Fragments</th>\
        <th>Stored</th><th>Demote after</th></tr>"
        .to_owned();
    for t in tiers {
        let nodes = t["nodes"].as_array().map_or(0, |n| n.len());
        out.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{} of {nodes}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            v(&t["name"]),
            v(&t["label"]),
            v(&t["nodes_up"]),
            v(&t["fragments"]),
            vb(&t["bytes"]),
            t["demote_after_secs"].as_u64().map_or("—".to_owned(), |s| format!("{s} s"))
        ));
    }
    out.push_str("</table>");
    out
}

fn schedule(interval: u64) -> String {
    if interval == 0 {
        "background job off in this router".into()
    } else {
        format!("every {interval} s in this router")
    }
}

fn work(o: &Overview<'_>) -> String {
    let (repair_every, repair_running, gc_every, gc_running) = o.background;
    let r = &o.status["last_repair"];
    let repair = if r.is_object() {
        format!(
            "last {} pass by {} at {} ({} ms): {} chunks examined, {} repaired, {} under-replicated, {} lost · \
             fragments {} rebuilt, {} copied, {} removed, {} corrupt",
            v(&r["mode"]),
            v(&r["by"]),
            vt(&r["finished_at_ms"]),
            v(&r["duration_ms"]),
            v(&r["chunks_examined"]),
            v(&r["chunks_repaired"]),
            v(&r["under_replicated"]),
            v(&r["chunks_lost"]),
            v(&r["fragments_rebuilt"]),
            v(&r["fragments_copied"]),
            v(&r["fragments_removed"]),
            v(&r["corrupt_fragments"])
        )
    } else {
        "no repair pass recorded yet".into()
    };
    let g = &o.status["last_gc"];
    let (gc_state, gc) = if g.is_object() {
        let state = if g["finished_at_ms"].is_null() { "running or interrupted" } else { "finished" };
        (state, format!(
            "last pass by {} started {}, phase {}, {}: shards marked {}/{}, {} chunks referenced, nodes swept {}/{}, \
             fragments examined {}{}, unreferenced {}, deleted {}, kept (recent) {} · {} freed · sessions expired {}, \
             trash entries purged {}, errors {}",
            v(&g["by"]), vt(&g["started_at_ms"]), v(&g["phase"]),
            if g["finished_at_ms"].is_null() { "not finished".to_owned() } else { format!("finished {}", vt(&g["finished_at_ms"])) },
            v(&g["shards_marked"]), v(&g["shards_total"]), v(&g["chunks_referenced"]), v(&g["nodes_swept"]), v(&g["nodes_total"]),
            v(&g["fragments_examined"]), per_second(g, "fragments_examined"), v(&g["fragments_unreferenced"]), v(&g["fragments_deleted"]),
            v(&g["fragments_kept_recent"]), vb(&g["bytes_freed"]), v(&g["sessions_expired"]),
            v(&g["trash_entries_purged"]), g["errors"].as_array().map_or(0, |e| e.len())
        ))
    } else {
        ("none", "no GC pass recorded yet".into())
    };
    let running = |on: bool| if on { " · <strong>running now</strong>" } else { "" };
    let rebalance = if r["mode"] == "rebalance" {
        "the last repair pass was a rebalance (see above)".to_owned()
    } else {
        "runs as the router's background repair pass (mode rebalance) or `tessera admin rebalance`".to_owned()
    };
    let mut out = format!(
        "<h2 id=\"work\">Background work</h2><dl><dt>Repair</dt><dd id=\"repair\">{}{} · {repair}</dd>\
         <dt>Rebalance</dt><dd id=\"rebalance\">{}</dd>\
         <dt>GC</dt><dd id=\"gc\" data-state=\"{gc_state}\">{}{} · {gc}</dd>\
         <dt>Tiering</dt><dd id=\"tiering\">{}</dd></dl>{}",
        schedule(repair_every),
        running(repair_running),
        escape(&rebalance),
        schedule(gc_every),
        running(gc_running),
        tiering_line(o.status),
        tier_table(o.status)
    );
    if let Some(run) = &o.jobs.running {
        out.push_str(&job_line(run));
    } else if let Some(run) = &o.jobs.last {
        out.push_str(&job_line(run));
    }
    let token = escape(o.csrf);
    let busy = if o.jobs.running.is_some() { " disabled" } else { "" };
    out.push_str(&format!(
        "<form class=\"inline\" method=\"post\" action=\"/actions/repair\"><input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <button id=\"start-repair\"{busy}>Start repair pass</button></form>\
         <form class=\"inline\" method=\"post\" action=\"/actions/gc\"><input type=\"hidden\" name=\"csrf\" value=\"{token}\">\
         <button id=\"start-gc\"{busy}>Start GC pass</button></form>"
    ));
    out
}

pub fn overview(o: &Overview<'_>) -> String {
    let mut body = String::new();
    if let Some(n) = o.notice {
        body.push_str(&format!("<p class=\"notice\" id=\"notice\">{}</p>", escape(n)));
    }
    if let Some(e) = o.error {
        body.push_str(&format!("<p class=\"error\" id=\"action-error\">{}</p>", escape(e)));
    }
    let (summary, tables) = health(o.status);
    body.push_str(&summary);
    body.push_str(&work(o));
    body.push_str(&tables);
    let refresh = o.jobs.running.is_some().then_some(2);
    layout("Overview", Some(o.csrf), refresh, &body)
}

/// The overview when the cluster could not be read at all.
pub fn unavailable(csrf: &str, error: &str) -> String {
    layout(
        "Overview",
        Some(csrf),
        Some(5),
        &format!("<p class=\"error\" id=\"status-error\">cluster status unavailable: {}</p>", escape(error)),
    )
}

pub fn users(csrf: &str, users: &[Value]) -> String {
    let mut body = format!("<p>{} users</p><table id=\"users\"><tr><th>User</th><th>Name</th><th>Created</th><th>Usage</th><th>Quota</th></tr>", users.len());
    for u in users {
        let quota = match (u["quota_bytes"].as_u64(), u["usage_bytes"].as_u64()) {
            (Some(q), Some(used)) => format!("{} ({:.1}% used)", bytes(q), 100.0 * used as f64 / q.max(1) as f64),
            _ => "none".into(),
        };
        body.push_str(&format!(
            "<tr data-user=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td data-bytes=\"{}\">{}</td><td data-bytes=\"{}\">{}</td></tr>",
            v(&u["user_id"]), v(&u["user_id"]), v(&u["display_name"]), vt(&u["created_at_ms"]), v(&u["usage_bytes"]),
            vb(&u["usage_bytes"]), v(&u["quota_bytes"]), escape(&quota)
        ));
    }
    body.push_str("</table>");
    layout("Users", Some(csrf), None, &body)
}

pub fn errors(csrf: &str, events: &[RecentEvent]) -> String {
    let mut body = format!(
        "<p>The latest {} warnings and errors this router logged, newest first (kept in memory).</p>\
         <table id=\"errors\"><tr><th>Time</th><th>Level</th><th>Where</th><th>Message</th></tr>",
        events.len()
    );
    for e in events {
        body.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            time_ms(e.at_ms),
            escape(&e.level),
            escape(&e.target),
            escape(&e.message)
        ));
    }
    body.push_str("</table>");
    layout("Recent errors", Some(csrf), None, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_values_are_escaped() {
        let users = vec![serde_json::json!({"user_id": "<script>x</script>", "display_name": "a&b", "usage_bytes": 1})];
        let page = super::users("t\"ok", &users);
        assert!(!page.contains("<script>x"));
        assert!(
            page.contains("&lt;script&gt;x&lt;/script&gt;") && page.contains("a&amp;b") && page.contains("t&quot;ok")
        );
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(time_ms(0), "1970-01-01 00:00:00 UTC");
    }
}
