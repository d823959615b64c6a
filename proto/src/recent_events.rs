//! The last warning- and error-level log events of this process, kept in a small
//! ring buffer by a tracing layer that [`crate::config::init_logging`] installs,
//! so an operator page (the router console) can show recent errors without
//! reading log files.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::Layer;

/// Events kept (the oldest are dropped first).
pub const CAPACITY: usize = 200;

#[derive(Debug, Clone, serde::Serialize)]
pub struct RecentEvent {
    pub at_ms: i64,
    /// "ERROR" or "WARN".
    pub level: String,
    /// The module that logged it (e.g. `tessera_router::gc::background`).
    pub target: String,
    /// The message and its fields (`message key=value …`).
    pub message: String,
}

fn buffer() -> &'static Mutex<VecDeque<RecentEvent>> {
    static BUFFER: OnceLock<Mutex<VecDeque<RecentEvent>>> = OnceLock::new();
    BUFFER.get_or_init(|| Mutex::new(VecDeque::with_capacity(CAPACITY)))
}

/// Adds an event by hand (also what the layer does).
pub fn push(event: RecentEvent) {
    let mut b = buffer().lock().unwrap_or_else(|p| p.into_inner());
    if b.len() >= CAPACITY {
        b.pop_front();
    }
    b.push_back(event);
}

/// The kept events, newest first.
pub fn snapshot() -> Vec<RecentEvent> {
    buffer().lock().unwrap_or_else(|p| p.into_inner()).iter().rev().cloned().collect()
}

/// The layer feeding the buffer with WARN and ERROR events.
pub struct RecentEventsLayer;

#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value}", field.name());
        }
    }
}

impl<S: Subscriber> Layer<S> for RecentEventsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > Level::WARN {
            return;
        }
        let mut text = Text::default();
        event.record(&mut text);
        let at_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        push(RecentEvent {
            at_ms,
            level: level.to_string(),
            target: event.metadata().target().to_owned(),
            message: format!("{}{}", text.message, text.fields),
        });
    }
}
