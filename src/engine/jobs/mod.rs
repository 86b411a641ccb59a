//! Background jobs: work Koios does apart from any statement — filling a
//! new copy of a mirrored table today — each with a row in the metadata
//! store that says what it does, where it is and how far it got, so that
//! `koios.system.jobs` shows it and it goes on after a restart.
//!
//! A job's worker (the code doing the work, which knows how to resume it)
//! reports progress ([`Job::advance`]), calls [`Job::gate`] between pieces
//! of work — where a `PAUSE JOB` holds it and a `CANCEL JOB` stops it —
//! and ends the job ([`Job::finish`]). Progress is written to the store
//! every few seconds and at every change of state; a restart finds an
//! unfinished job's row and its worker picks it up again
//! ([`Jobs::unfinished`]). [`statements`]: `SHOW JOBS`, `PAUSE JOB n`,
//! `RESUME JOB n`, `CANCEL JOB n`.

pub mod statements;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use datafusion::error::Result;
use koios_connector::{sql_err, sql_error};

use crate::engine::error::codes;
use crate::engine::metadata::{MetadataStore, StoredJob, now_text};

/// The kind of job that brings a stale copy back from nothing (after Koios
/// stopped in the middle of a write to its table): it cannot be cancelled — the copy would stay
/// stale and unread.
pub const RESYNC_COPY: &str = "resync copy";

/// How often a running job's progress is written to the store.
const SAVE_EVERY: Duration = Duration::from_secs(2);

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Running,
    Paused,
    Done,
    Failed,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Running => "running",
            JobState::Paused => "paused",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> JobState {
        match text {
            "paused" => JobState::Paused,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "cancelled" => JobState::Cancelled,
            _ => JobState::Running,
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            JobState::Done | JobState::Failed | JobState::Cancelled
        )
    }
}

/// What a job's worker is asked to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Control {
    Run,
    Pause,
    Cancel,
}

/// One job: its stored row, kept up to date, and its controls.
pub struct Job {
    row: Mutex<StoredJob>,
    control: tokio::sync::watch::Sender<Control>,
    store: Arc<dyn MetadataStore>,
    /// Since when this server has run it, and the rows done then (the rate
    /// counts this server's work only).
    clock: Mutex<(Instant, i64)>,
    saved: Mutex<Instant>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job").field("row", &self.row()).finish()
    }
}

/// A job's row as `koios.system.jobs` shows it.
#[derive(Debug, Clone)]
pub struct JobView {
    pub row: StoredJob,
    /// Rows per second since this server started running it.
    pub rate: Option<f64>,
    /// Seconds left at that rate, when the total is known.
    pub eta_seconds: Option<f64>,
}

impl Job {
    fn new(row: StoredJob, store: Arc<dyn MetadataStore>) -> Job {
        let control = match JobState::parse(&row.state) {
            JobState::Paused => Control::Pause,
            _ => Control::Run,
        };
        let done = row.rows_done;
        Job {
            row: Mutex::new(row),
            control: tokio::sync::watch::channel(control).0,
            store,
            clock: Mutex::new((Instant::now(), done)),
            saved: Mutex::new(Instant::now()),
        }
    }

    fn row(&self) -> StoredJob {
        self.row.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn id(&self) -> i64 {
        self.row.lock().unwrap_or_else(|p| p.into_inner()).id
    }

    pub fn kind(&self) -> String {
        self.row
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .kind
            .clone()
    }

    pub fn state(&self) -> JobState {
        JobState::parse(&self.row.lock().unwrap_or_else(|p| p.into_inner()).state)
    }

    /// The row with its rate and time left.
    pub fn view(&self) -> JobView {
        let row = self.row();
        let (since, done_then) = *self.clock.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = since.elapsed().as_secs_f64();
        let rate = (JobState::parse(&row.state) == JobState::Running && elapsed > 0.5)
            .then(|| (row.rows_done - done_then).max(0) as f64 / elapsed);
        let eta_seconds = match (rate, row.rows_total) {
            (Some(rate), Some(total)) if rate > 0.0 => {
                Some((total - row.rows_done).max(0) as f64 / rate)
            }
            _ => None,
        };
        JobView {
            row,
            rate,
            eta_seconds,
        }
    }

    fn update(&self, change: impl FnOnce(&mut StoredJob)) -> StoredJob {
        let mut row = self.row.lock().unwrap_or_else(|p| p.into_inner());
        change(&mut row);
        row.updated_at = now_text();
        row.clone()
    }

    async fn save(&self, row: StoredJob) -> Result<()> {
        *self.saved.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
        self.store.update_job(&row).await
    }

    /// What the job needs to go on after a restart (its kind's JSON).
    pub fn spec(&self) -> String {
        self.row
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .spec
            .clone()
    }

    /// Writes the job's spec to the store now (a checkpoint).
    pub async fn checkpoint(&self, spec: String) -> Result<()> {
        let row = self.update(|row| row.spec = spec);
        self.save(row).await
    }

    /// Opens a failed job again for its worker to go on from its
    /// checkpoints (`RESUME JOB` of a job whose kind can).
    pub async fn reopen(&self) -> Result<()> {
        if self.state() != JobState::Failed {
            return sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "job {} is {}: only a failed job can be reopened",
                self.id(),
                self.state().as_str()
            );
        }
        self.control.send_replace(Control::Run);
        let row = self.update(|row| {
            row.state = JobState::Running.as_str().into();
            row.finished_at = None;
        });
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), row.rows_done);
        self.save(row).await
    }

    /// The rows (and bytes) the job has to do in all, when it knows.
    pub fn set_total(&self, rows: Option<i64>) {
        self.update(|row| row.rows_total = rows);
    }

    /// Starts counting again from nothing (a worker starting over).
    pub fn restart_count(&self) {
        self.update(|row| {
            row.rows_done = 0;
            row.bytes = 0;
        });
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = (Instant::now(), 0);
    }

    /// Adds work done; written to the store every few seconds.
    pub async fn advance(&self, rows: i64, bytes: i64) -> Result<()> {
        let row = self.update(|row| {
            row.rows_done += rows;
            row.bytes += bytes;
        });
        let due = self
            .saved
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
            >= SAVE_EVERY;
        if due { self.save(row).await } else { Ok(()) }
    }

    /// Notes why the work failed for now (the worker tries again); the job
    /// stays running.
    pub async fn note_error(&self, error: &str) -> Result<()> {
        let row = self.update(|row| row.error = Some(error.to_string()));
        self.save(row).await
    }

    /// Where a worker waits while the job is paused; an error (57014) once
    /// it is cancelled.
    pub async fn gate(&self) -> Result<()> {
        let mut control = self.control.subscribe();
        loop {
            let now = *control.borrow_and_update();
            match now {
                Control::Run => {
                    if self.state() == JobState::Paused {
                        let row = self.update(|row| row.state = JobState::Running.as_str().into());
                        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) =
                            (Instant::now(), row.rows_done);
                        self.save(row).await?;
                    }
                    return Ok(());
                }
                Control::Cancel => {
                    return sql_err!(codes::QUERY_CANCELED, "job {} was cancelled", self.id());
                }
                Control::Pause => {
                    if self.state() != JobState::Paused {
                        let row = self.update(|row| row.state = JobState::Paused.as_str().into());
                        self.save(row).await?;
                    }
                    if control.changed().await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Whether `CANCEL JOB` was asked.
    pub fn is_cancelled(&self) -> bool {
        *self.control.borrow() == Control::Cancel
    }

    /// Ends the job: done, cancelled (if it was asked to stop) or failed.
    pub async fn finish(&self, outcome: &Result<()>) -> Result<()> {
        let state = match outcome {
            Ok(()) => JobState::Done,
            Err(_) if self.is_cancelled() => JobState::Cancelled,
            Err(_) => JobState::Failed,
        };
        let row = self.update(|row| {
            row.state = state.as_str().into();
            row.finished_at = Some(now_text());
            row.error = outcome.as_ref().err().map(|e| e.to_string());
            if state == JobState::Done
                && let Some(total) = row.rows_total
            {
                row.rows_done = row.rows_done.max(total);
            }
        });
        self.save(row).await
    }
}

/// Every job of this server's store.
#[derive(Debug)]
pub struct Jobs {
    store: Arc<dyn MetadataStore>,
    jobs: RwLock<BTreeMap<i64, Arc<Job>>>,
}

impl Jobs {
    /// The jobs the store holds (finished ones too: their rows stay).
    pub async fn load(store: Arc<dyn MetadataStore>) -> Result<Jobs> {
        let jobs = store
            .jobs()
            .await?
            .into_iter()
            .map(|row| (row.id, Arc::new(Job::new(row, Arc::clone(&store)))))
            .collect();
        Ok(Jobs {
            store,
            jobs: RwLock::new(jobs),
        })
    }

    /// Starts a job (stored before this returns).
    pub async fn start(
        &self,
        kind: &str,
        source: &str,
        destination: &str,
        spec: &str,
    ) -> Result<Arc<Job>> {
        let now = now_text();
        let mut row = StoredJob {
            id: 0,
            kind: kind.into(),
            source: source.into(),
            destination: destination.into(),
            state: JobState::Running.as_str().into(),
            rows_done: 0,
            rows_total: None,
            bytes: 0,
            spec: spec.into(),
            error: None,
            started_at: now.clone(),
            updated_at: now,
            finished_at: None,
        };
        row.id = self.store.insert_job(&row).await?;
        let job = Arc::new(Job::new(row, Arc::clone(&self.store)));
        self.jobs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(job.id(), Arc::clone(&job));
        Ok(job)
    }

    /// The unfinished job of `kind` from `source` to `destination`, if any
    /// (a worker picking up its job after a restart).
    pub fn unfinished(&self, kind: &str, source: &str, destination: &str) -> Option<Arc<Job>> {
        self.jobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .find(|job| {
                let row = job.row();
                row.kind == kind
                    && row.source == source
                    && row.destination == destination
                    && !JobState::parse(&row.state).is_finished()
            })
            .cloned()
    }

    /// Every job, by id.
    pub fn list(&self) -> Vec<Arc<Job>> {
        self.jobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Job `id`; 42704 if there is none.
    pub fn get(&self, id: i64) -> Result<Arc<Job>> {
        self.find(id)
    }

    fn find(&self, id: i64) -> Result<Arc<Job>> {
        self.jobs
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
            .ok_or_else(|| sql_error!(codes::UNDEFINED_OBJECT, "job {id} does not exist"))
    }

    /// `PAUSE JOB id`: its worker stops at its next piece of work.
    pub async fn pause(&self, id: i64) -> Result<()> {
        let job = self.unfinished_job(id, "paused")?;
        job.control.send_replace(Control::Pause);
        let row = job.update(|row| row.state = JobState::Paused.as_str().into());
        job.save(row).await
    }

    /// `RESUME JOB id`.
    pub async fn resume(&self, id: i64) -> Result<()> {
        let job = self.unfinished_job(id, "resumed")?;
        job.control.send_replace(Control::Run);
        Ok(())
    }

    /// `CANCEL JOB id`: its worker stops at its next piece of work and
    /// undoes what the job's kind undoes.
    pub async fn cancel(&self, id: i64) -> Result<()> {
        let job = self.unfinished_job(id, "cancelled")?;
        if job.kind() == RESYNC_COPY {
            return sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "job {id} brings stale copy {} back and cannot be cancelled (the copy would stay stale and never be read): PAUSE JOB {id} to hold it, or remove the copy",
                job.row().destination
            );
        }
        job.control.send_replace(Control::Cancel);
        Ok(())
    }

    fn unfinished_job(&self, id: i64, verb: &str) -> Result<Arc<Job>> {
        let job = self.find(id)?;
        let state = job.state();
        if state.is_finished() {
            return sql_err!(
                codes::OBJECT_NOT_IN_PREREQUISITE_STATE,
                "job {id} is {}: only a running or paused job can be {verb}",
                state.as_str()
            );
        }
        Ok(job)
    }
}
