//! Warnings a statement leaves for its client (PostgreSQL's NoticeResponse
//! with severity WARNING): the planner and the executor push them, the
//! front end sends them before the statement's completion.

use std::sync::Mutex;

/// A session's pending warnings.
#[derive(Debug, Default)]
pub struct Notices {
    pending: Mutex<Vec<String>>,
}

impl Notices {
    /// Records a warning for the client (one copy of each message).
    pub fn warn(&self, message: String) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.contains(&message) {
            pending.push(message);
        }
    }

    /// The warnings recorded since the last call.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()))
    }
}
