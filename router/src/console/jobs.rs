//! The passes the console's buttons start: a repair pass (scrub, then rebuild
//! what is missing or corrupt; the same code as `tessera admin repair`, recorded
//! in the cluster group) or a GC pass (the same code as `tessera admin gc run`,
//! which records itself as it goes), one at a time, in this router.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tessera_meta::cluster::GcRecord;

use crate::datapath::{now_ms, DataPath};
use crate::gc::background::GcConfig;
use crate::repair::background::RepairConfig;
use crate::repair::{Mode, RepairOptions, RepairProgress};

/// The router's own background jobs: whether one runs now, and their schedules.
#[derive(Clone, Default)]
pub struct Background {
    pub repair_running: Gauge,
    pub gc_running: Gauge,
    pub repair: RepairConfig,
    pub gc: GcConfig,
    /// Who the console's passes are recorded as ("console router 127.0.0.1:…").
    pub by: String,
}

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    Repair,
    Gc,
}

impl JobKind {
    pub fn label(self) -> &'static str {
        match self {
            JobKind::Repair => "repair",
            JobKind::Gc => "GC",
        }
    }
}

/// A pass started from the console.
#[derive(Debug, Clone, Serialize)]
pub struct JobRun {
    pub kind: JobKind,
    pub started_at_ms: i64,
    pub finished_at_ms: Option<i64>,
    /// The latest progress line (the summary once finished).
    pub progress: String,
    /// Set when the pass ended with an error.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct JobState {
    pub running: Option<JobRun>,
    pub last: Option<JobRun>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JobError {
    #[error("a {0} pass started from the console is still running; wait for it to finish")]
    ConsoleBusy(&'static str),
    #[error("the router's background {0} pass is running now; wait for it to finish")]
    BackgroundBusy(&'static str),
    #[error("a GC pass by {0} is running (progress within the last 30 s); wait for it to finish")]
    ElsewhereBusy(String),
}

pub struct Jobs {
    dp: Arc<DataPath>,
    background: Background,
    state: Arc<Mutex<JobState>>,
}

fn lock(state: &Mutex<JobState>) -> std::sync::MutexGuard<'_, JobState> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

fn set_progress(state: &Mutex<JobState>, line: String) {
    if let Some(run) = lock(state).running.as_mut() {
        run.progress = line;
    }
}

fn finish(state: &Mutex<JobState>, outcome: Result<String, String>) {
    let mut s = lock(state);
    if let Some(mut run) = s.running.take() {
        run.finished_at_ms = Some(now_ms());
        match outcome {
            Ok(line) => run.progress = line,
            Err(e) => run.error = Some(e),
        }
        s.last = Some(run);
    }
}

pub fn gc_summary(r: &GcRecord) -> String {
    format!(
        "{} · shards marked {}/{} · nodes swept {}/{} · fragments examined {}, deleted {}, kept (recent) {} · {} bytes freed",
        r.phase,
        r.shards_marked,
        r.shards_total,
        r.nodes_swept,
        r.nodes_total,
        r.fragments_examined,
        r.fragments_deleted,
        r.fragments_kept_recent,
        r.bytes_freed
    )
}

pub fn repair_summary(p: &RepairProgress) -> String {
    format!(
        "shards {}/{} · fragments scrubbed {} · chunks examined {}, repaired {}, under-replicated {}, lost {} · \
         fragments rebuilt {}, copied {}",
        p.shards_done,
        p.shards_total,
        p.fragments_scrubbed,
        p.chunks_examined,
        p.chunks_repaired,
        p.chunks_waiting_for_node + p.chunks_lost,
        p.chunks_lost,
        p.fragments_rebuilt,
        p.fragments_copied
    )
}

/// A GC pass elsewhere (CLI, another router) counts as running while its record
/// is unfinished and was updated this recently.
const ELSEWHERE_FRESH: Duration = Duration::from_secs(30);

impl Jobs {
    pub fn new(dp: Arc<DataPath>, background: Background) -> Self {
        Self { dp, background, state: Arc::default() }
    }

    pub fn state(&self) -> JobState {
        lock(&self.state).clone()
    }

    /// Starts a pass in the background; refused while another runs.
    pub async fn start(&self, kind: JobKind) -> Result<(), JobError> {
        if let Some(run) = &lock(&self.state).running {
            return Err(JobError::ConsoleBusy(run.kind.label()));
        }
        let background = match kind {
            JobKind::Repair => &self.background.repair_running,
            JobKind::Gc => &self.background.gc_running,
        };
        if background.get() > 0 {
            return Err(JobError::BackgroundBusy(kind.label()));
        }
        if kind == JobKind::Gc {
            if let Ok(Some(r)) = crate::gc::status(&self.dp).await {
                let fresh = now_ms() - r.updated_at_ms < ELSEWHERE_FRESH.as_millis() as i64;
                if r.finished_at_ms.is_none() && fresh {
                    return Err(JobError::ElsewhereBusy(r.by));
                }
            }
        }
        {
            let mut s = lock(&self.state);
            if let Some(run) = &s.running {
                return Err(JobError::ConsoleBusy(run.kind.label()));
            }
            s.running = Some(JobRun {
                kind,
                started_at_ms: now_ms(),
                finished_at_ms: None,
                progress: "starting".into(),
                error: None,
            });
        }
        tracing::info!(kind = kind.label(), "pass started from the console");
        let (dp, state, bg) = (self.dp.clone(), self.state.clone(), self.background.clone());
        let work = tokio::spawn(run(dp, state.clone(), bg, kind));
        tokio::spawn(async move {
            // A panicking pass still ends the run, so the buttons work again.
            if let Err(e) = work.await {
                finish(&state, Err(format!("the pass stopped: {e}")));
            }
        });
        Ok(())
    }
}

async fn run(dp: Arc<DataPath>, state: Arc<Mutex<JobState>>, bg: Background, kind: JobKind) {
    let outcome = match kind {
        JobKind::Gc => {
            let options = bg.gc.options(bg.by.clone());
            crate::gc::run(&dp, &options, |r| set_progress(&state, gc_summary(r)))
                .await
                .map(|r| gc_summary(&r))
                .map_err(|e| e.to_string())
        }
        JobKind::Repair => {
            let options = RepairOptions {
                mode: Mode::Repair,
                scrub: true,
                parallel: bg.repair.parallel.max(1),
                ..Default::default()
            };
            let started = Instant::now();
            match crate::repair::run(&dp, &options, |p| set_progress(&state, repair_summary(p))).await {
                Ok(p) => match crate::repair::record(&dp, &p, &bg.by, started.elapsed()).await {
                    Ok(()) => Ok(repair_summary(&p)),
                    Err(e) => Err(format!("the pass finished but was not recorded: {e}")),
                },
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match &outcome {
        Ok(line) => tracing::info!(kind = kind.label(), summary = %line, "console pass finished"),
        Err(e) => tracing::warn!(kind = kind.label(), error = %e, "console pass failed"),
    }
    finish(&state, outcome);
}
