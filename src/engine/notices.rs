//! Messages a statement leaves for its client (PostgreSQL's
//! NoticeResponse): warnings the planner and the executor push (a striped
//! table's member left out, …) and notices of progress (a migration the
//! statement waits for). The front end sends them before the statement's
//! completion — and, for a statement that runs long, while it runs.

use std::sync::Mutex;

/// How serious a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Something the client should know went differently (01000).
    Warning,
    /// Information, such as progress (00000).
    Notice,
}

/// A session's pending messages.
#[derive(Debug, Default)]
pub struct Notices {
    pending: Mutex<Vec<(Severity, String)>>,
}

impl Notices {
    /// Records a warning for the client (one copy of each message).
    pub fn warn(&self, message: String) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.iter().any(|(_, m)| *m == message) {
            pending.push((Severity::Warning, message));
        }
    }

    /// Records a notice (progress) for the client.
    pub fn notice(&self, message: String) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((Severity::Notice, message));
    }

    /// The messages recorded since the last call.
    pub fn take(&self) -> Vec<(Severity, String)> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
