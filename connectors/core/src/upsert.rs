//! `INSERT … ON CONFLICT` in terms of no backend: which columns identify a
//! row already there, and what to do with it. The engine reads it from the
//! statement; a connector that can carry it out plans it
//! ([`crate::Connector::plan_upsert`]) and writes its dialect's statements
//! through [`crate::remote_sql`].

use datafusion::common::ScalarValue;

/// What an insert does with a row whose key is already in the table.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct OnConflict {
    /// The columns whose equal values make a conflict (the statement's
    /// conflict target), in the table's names.
    pub target: Vec<String>,
    pub action: ConflictAction,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum ConflictAction {
    /// `DO NOTHING`: the row already there stays; the new one is dropped.
    Nothing,
    /// `DO UPDATE SET column = value, …` on the row already there.
    Update(Vec<(String, UpsertValue)>),
}

/// A new value of a conflicting row's column.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum UpsertValue {
    /// `EXCLUDED.column`: the value the insert proposed.
    Proposed(String),
    /// A constant.
    Constant(ScalarValue),
}

impl OnConflict {
    /// The clause as `EXPLAIN` shows it.
    pub fn describe(&self) -> String {
        let action = match &self.action {
            ConflictAction::Nothing => "DO NOTHING".to_string(),
            ConflictAction::Update(assignments) => format!(
                "DO UPDATE SET {}",
                assignments
                    .iter()
                    .map(|(column, value)| match value {
                        UpsertValue::Proposed(from) => format!("{column} = EXCLUDED.{from}"),
                        UpsertValue::Constant(v) => format!("{column} = {v}"),
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        format!("ON CONFLICT ({}) {action}", self.target.join(", "))
    }
}
