//! What every client session is doing: the registry behind
//! `koios.system.sessions`, `koios.system.queries`, `pg_stat_activity` and
//! `pg_cancel_backend`.
//!
//! Each session owns one [`SessionActivity`] and is the only one to write
//! it (a small mutex per session, taken once when a statement starts, once
//! when its plan is known and once when it ends); readers take it briefly
//! to copy a [`Snapshot`]. The registry's map is written only when a
//! session connects or disconnects, so no query takes a lock shared by all
//! sessions.
//!
//! A running statement keeps its physical plan here (an `Arc`, no copy);
//! which sources it reads and what it sends them is worked out only when
//! someone looks ([`remote_statements`]), so the query path pays nothing
//! for it.

use crate::engine::sources::statements::redact_statement_text;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::SystemTime;

use datafusion::physical_plan::ExecutionPlan;
use koios_connector::Capabilities;

use crate::engine::settings::Settings;

/// What a session is doing, with PostgreSQL's names for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Idle,
    Active,
    IdleInTransaction,
}

impl SessionState {
    /// `pg_stat_activity.state`'s spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Idle => "idle",
            SessionState::Active => "active",
            SessionState::IdleInTransaction => "idle in transaction",
        }
    }
}

/// Stops the statement a session is running (the front end's cancel
/// machinery: the same as a CancelRequest).
pub trait CancelStatement: Send + Sync {
    fn cancel_statement(&self);
}

/// Who a session is and where it connected from; fixed at connection.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    /// The backend process id the front end handed the client (its cancel
    /// key); unique among live sessions.
    pub pid: i32,
    pub user: String,
    pub database: String,
    pub client_addr: Option<SocketAddr>,
}

/// The part of a session's activity that changes with each statement.
#[derive(Default)]
struct Current {
    state: Option<SessionState>,
    /// The current or last statement's text.
    query: Option<Arc<str>>,
    query_start: Option<SystemTime>,
    state_change: Option<SystemTime>,
    /// The running statement's physical plan, once planned.
    plan: Option<Arc<dyn ExecutionPlan>>,
    /// Counts statements, so that the end of one never marks a later one
    /// idle.
    statement: u64,
    in_transaction: bool,
}

/// The activity of one session.
pub struct SessionActivity {
    info: SessionInfo,
    backend_start: SystemTime,
    /// The session's parameters (`application_name` is shown).
    settings: Arc<Mutex<Settings>>,
    current: Mutex<Current>,
    canceller: OnceLock<Arc<dyn CancelStatement>>,
}

impl std::fmt::Debug for SessionActivity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionActivity")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

/// A copy of one session's activity at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub info: SessionInfo,
    pub backend_start: SystemTime,
    pub application_name: String,
    pub state: SessionState,
    pub query: Option<Arc<str>>,
    pub query_start: Option<SystemTime>,
    pub state_change: SystemTime,
    /// The running statement's plan (only while `state` is active).
    pub plan: Option<Arc<dyn ExecutionPlan>>,
}

impl SessionActivity {
    /// The activity of a session starting now, idle.
    pub fn new(info: SessionInfo, settings: Arc<Mutex<Settings>>) -> Arc<SessionActivity> {
        Arc::new(SessionActivity {
            info,
            backend_start: SystemTime::now(),
            settings,
            current: Mutex::new(Current::default()),
            canceller: OnceLock::new(),
        })
    }

    pub fn info(&self) -> &SessionInfo {
        &self.info
    }

    pub fn pid(&self) -> i32 {
        self.info.pid
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks the statement `sql` as running; it is over when the returned
    /// guard drops (the front end keeps it until the last row is sent).
    pub fn begin(self: &Arc<Self>, sql: &str) -> StatementGuard {
        let now = SystemTime::now();
        let mut current = self.current();
        // The same text again (a repeated lookup) keeps its copy. Others
        // see a source statement without its values (a URL may hold a
        // password).
        if current.query.as_deref() != Some(sql) {
            current.query = Some(Arc::from(redact_statement_text(sql).as_ref()));
        }
        current.state = Some(SessionState::Active);
        current.query_start = Some(now);
        current.state_change = Some(now);
        current.plan = None;
        current.statement += 1;
        StatementGuard {
            activity: Arc::clone(self),
            statement: current.statement,
        }
    }

    /// Records the plan the running statement executes.
    pub fn record_plan(&self, plan: &Arc<dyn ExecutionPlan>) {
        self.current().plan = Some(Arc::clone(plan));
    }

    /// Whether the session is inside `BEGIN … COMMIT` (idle then shows as
    /// `idle in transaction`).
    pub fn set_in_transaction(&self, inside: bool) {
        self.current().in_transaction = inside;
    }

    fn finish(&self, statement: u64) {
        let mut current = self.current();
        if current.statement != statement {
            return;
        }
        current.state = Some(if current.in_transaction {
            SessionState::IdleInTransaction
        } else {
            SessionState::Idle
        });
        current.state_change = Some(SystemTime::now());
        // Dropping the plan releases its remote scans' state.
        current.plan = None;
    }

    /// Installs what cancels this session's running statement.
    pub fn set_canceller(&self, canceller: Arc<dyn CancelStatement>) {
        let _ = self.canceller.set(canceller);
    }

    /// Cancels the running statement, if any; whether there was a way to.
    pub fn cancel(&self) -> bool {
        match self.canceller.get() {
            Some(canceller) => {
                canceller.cancel_statement();
                true
            }
            None => false,
        }
    }

    /// A copy of the activity now.
    pub fn snapshot(&self) -> Snapshot {
        let application_name = self
            .settings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get("application_name")
            .unwrap_or_default()
            .to_string();
        let current = self.current();
        let state = current.state.unwrap_or(SessionState::Idle);
        Snapshot {
            info: self.info.clone(),
            backend_start: self.backend_start,
            application_name,
            state,
            query: current.query.clone(),
            query_start: current.query_start,
            state_change: current.state_change.unwrap_or(self.backend_start),
            plan: (state == SessionState::Active)
                .then(|| current.plan.clone())
                .flatten(),
        }
    }
}

/// Marks its statement over when dropped.
pub struct StatementGuard {
    activity: Arc<SessionActivity>,
    statement: u64,
}

impl Drop for StatementGuard {
    fn drop(&mut self) {
        self.activity.finish(self.statement);
    }
}

impl std::fmt::Debug for StatementGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatementGuard")
            .field("pid", &self.activity.pid())
            .field("statement", &self.statement)
            .finish()
    }
}

/// Every live session, by pid.
#[derive(Debug, Default)]
pub struct ActivityRegistry {
    sessions: RwLock<BTreeMap<i32, Arc<SessionActivity>>>,
}

impl ActivityRegistry {
    /// Lists `activity` until the returned guard drops (with the session).
    pub fn register(self: &Arc<Self>, activity: &Arc<SessionActivity>) -> Listed {
        self.sessions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(activity.pid(), Arc::clone(activity));
        Listed {
            registry: Arc::clone(self),
            activity: Arc::clone(activity),
        }
    }

    /// Every live session, by pid.
    pub fn sessions(&self) -> Vec<Arc<SessionActivity>> {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The session with backend pid `pid`.
    pub fn session(&self, pid: i32) -> Option<Arc<SessionActivity>> {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .cloned()
    }

    /// How many sessions are connected.
    pub fn len(&self) -> usize {
        self.sessions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A session's entry in the registry, removed when dropped.
pub struct Listed {
    registry: Arc<ActivityRegistry>,
    activity: Arc<SessionActivity>,
}

impl Drop for Listed {
    fn drop(&mut self) {
        let mut sessions = self
            .registry
            .sessions
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // Only this session's entry: a pid is never reused while listed,
        // but removing by identity costs nothing and stays right if it were.
        if sessions
            .get(&self.activity.pid())
            .is_some_and(|listed| Arc::ptr_eq(listed, &self.activity))
        {
            sessions.remove(&self.activity.pid());
        }
    }
}

impl std::fmt::Debug for Listed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listed")
            .field("pid", &self.activity.pid())
            .finish()
    }
}

/// The statements `plan` has open in its sources, as `source: statement`
/// (in plan order; one per partition of a partitioned scan).
pub fn remote_statements(
    plan: &Arc<dyn ExecutionPlan>,
    capabilities: &Capabilities,
) -> Vec<String> {
    let mut found = Vec::new();
    let mut pending: Vec<&Arc<dyn ExecutionPlan>> = vec![plan];
    while let Some(node) = pending.pop() {
        if let Some(source) = capabilities.node_source(node.as_ref()) {
            let statements = capabilities
                .node_remote_sql(node.as_ref())
                .unwrap_or_default();
            if statements.is_empty() {
                found.push(source.0.clone());
            }
            for sql in statements {
                found.push(format!("{}: {sql}", source.0));
            }
            continue;
        }
        // Children pushed in reverse: the walk visits them left to right.
        pending.extend(node.children().into_iter().rev());
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity(pid: i32) -> Arc<SessionActivity> {
        SessionActivity::new(
            SessionInfo {
                pid,
                user: "alice".into(),
                database: "koios".into(),
                client_addr: None,
            },
            Default::default(),
        )
    }

    #[test]
    fn a_statement_is_active_until_its_guard_drops() {
        let session = activity(7);
        assert_eq!(session.snapshot().state, SessionState::Idle);
        let guard = session.begin("SELECT 1");
        let now = session.snapshot();
        assert_eq!(now.state, SessionState::Active);
        assert_eq!(now.query.as_deref(), Some("SELECT 1"));
        drop(guard);
        let after = session.snapshot();
        assert_eq!(after.state, SessionState::Idle);
        // The last statement stays shown, as in PostgreSQL.
        assert_eq!(after.query.as_deref(), Some("SELECT 1"));
    }

    #[test]
    fn the_end_of_an_earlier_statement_leaves_a_later_one_active() {
        let session = activity(7);
        let first = session.begin("SELECT 1");
        let _second = session.begin("SELECT 2");
        drop(first);
        assert_eq!(session.snapshot().state, SessionState::Active);
    }

    #[test]
    fn idle_inside_a_transaction_says_so() {
        let session = activity(7);
        session.set_in_transaction(true);
        drop(session.begin("BEGIN"));
        assert_eq!(session.snapshot().state.as_str(), "idle in transaction");
    }

    #[test]
    fn sessions_leave_the_registry_when_their_entry_drops() {
        let registry = Arc::new(ActivityRegistry::default());
        let a = activity(1);
        let b = activity(2);
        let listed_a = registry.register(&a);
        let _listed_b = registry.register(&b);
        assert_eq!(registry.len(), 2);
        assert_eq!(registry.session(1).map(|s| s.pid()), Some(1));
        drop(listed_a);
        assert!(registry.session(1).is_none());
        assert_eq!(registry.len(), 1);
    }

    #[test]
    fn cancel_reaches_the_installed_canceller() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl CancelStatement for Flag {
            fn cancel_statement(&self) {
                self.0.store(true, std::sync::atomic::Ordering::Release);
            }
        }
        let session = activity(3);
        assert!(!session.cancel(), "nothing installed yet");
        let flag = Arc::new(Flag(Default::default()));
        session.set_canceller(Arc::clone(&flag) as Arc<dyn CancelStatement>);
        assert!(session.cancel());
        assert!(flag.0.load(std::sync::atomic::Ordering::Acquire));
    }
}
