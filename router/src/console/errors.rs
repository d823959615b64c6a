//! Recent errors for the console: the warnings and errors this process logged,
//! newest first, as kept by [`tessera_proto::recent_events`] (a tracing layer
//! every Tessera binary installs).

pub use tessera_proto::recent_events::RecentEvent;

/// At most `limit` of the latest events, newest first.
pub fn recent(limit: usize) -> Vec<RecentEvent> {
    let mut all = tessera_proto::recent_events::snapshot();
    all.truncate(limit);
    all
}
