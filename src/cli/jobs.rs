//! `koios jobs`: the background jobs of a running server (migrations,
//! copies being filled or brought back) — a table of every job, or with
//! `--watch` a live progress bar per unfinished job, redrawn from
//! `koios.system.jobs` twice a second until every job it shows has ended.

use std::collections::BTreeMap;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::remote::Remote;
use crate::engine::error::Result;

/// What `koios jobs` prints.
pub const LIST_JOBS: &str = "SELECT id, kind, source, destination, state, rows_done, rows_total, \
     round(rate) AS rows_per_s, round(eta_seconds) AS eta_s, started, error \
     FROM koios.system.jobs ORDER BY id";

/// What `koios jobs --watch` reads each time it redraws.
const PROGRESS: &str = "SELECT id, kind, source, destination, state, rows_done, rows_total, error \
     FROM koios.system.jobs ORDER BY id";

/// How often the bars are redrawn.
const EVERY: Duration = Duration::from_millis(500);

/// One job as the bars show it.
#[derive(Debug, Clone, PartialEq)]
struct Progress {
    id: i64,
    label: String,
    state: String,
    done: u64,
    total: Option<u64>,
    error: Option<String>,
}

impl Progress {
    fn finished(&self) -> bool {
        matches!(self.state.as_str(), "done" | "failed" | "cancelled")
    }
}

/// The jobs now.
async fn read(remote: &Remote) -> Result<Vec<Progress>> {
    let table = remote.rows(PROGRESS).await?;
    let number = |v: &Option<String>| v.as_deref().and_then(|v| v.parse::<u64>().ok());
    Ok(table
        .rows
        .iter()
        .filter_map(|row| {
            let text = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            Some(Progress {
                id: text(0).parse().ok()?,
                label: format!("{} {} → {}", text(1), text(2), text(3)),
                state: text(4),
                done: number(row.get(5)?).unwrap_or(0),
                total: number(row.get(6)?),
                error: row.get(7).cloned().flatten(),
            })
        })
        .collect())
}

/// Draws a bar per unfinished job (on standard error, when it is a
/// terminal) until they have all ended; `false` if there was none to
/// watch.
pub async fn watch(remote: &Remote) -> Result<bool> {
    let bars = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
    let style = ProgressStyle::with_template(
        "{prefix:>5} {msg:40!} [{bar:30}] {human_pos}/{human_len} rows {per_sec} eta {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let mut shown: BTreeMap<i64, ProgressBar> = BTreeMap::new();
    loop {
        let jobs = read(remote).await?;
        for job in &jobs {
            if job.finished() && !shown.contains_key(&job.id) {
                continue;
            }
            let bar = shown.entry(job.id).or_insert_with(|| {
                let bar = bars.add(ProgressBar::new(job.total.unwrap_or(0)));
                bar.set_style(style.clone());
                bar.set_prefix(format!("#{}", job.id));
                bar
            });
            if let Some(total) = job.total {
                bar.set_length(total);
            }
            bar.set_position(job.done);
            bar.set_message(format!("{} ({})", job.label, job.state));
            if job.finished() && !bar.is_finished() {
                let end = match &job.error {
                    Some(error) if job.state != "done" => format!("{}: {error}", job.state),
                    _ => job.state.clone(),
                };
                bar.finish_with_message(format!("{} ({end})", job.label));
            }
        }
        if shown.is_empty() {
            return Ok(false);
        }
        if shown.values().all(ProgressBar::is_finished) {
            return Ok(true);
        }
        tokio::time::sleep(EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_has_ended_once_done_failed_or_cancelled() {
        let mut job = Progress {
            id: 1,
            label: "migrate a → b".into(),
            state: "running".into(),
            done: 5,
            total: Some(10),
            error: None,
        };
        assert!(!job.finished());
        for state in ["done", "failed", "cancelled"] {
            job.state = state.into();
            assert!(job.finished());
        }
    }
}
