//! `[[table]]`: logical tables declared in the configuration file, the
//! same as `CREATE TABLE … STRIPED …` / `… MIRRORED ON …`:
//!
//! ```toml
//! [[table]]
//! name = "events"                      # koios.public.events
//! columns = ["id bigint PRIMARY KEY", "kind text", "payload text"]
//! striped = "hash"                     # or "round robin"
//! key = "id"                           # the hash key
//! members = ["pg.public.events", "my.app.events", "mongo.app.events"]
//!
//! [[table]]
//! name = "accounts"
//! columns = ["id bigint PRIMARY KEY", "owner text"]
//! mirrored = true                      # every row on every member
//! read = "first"                       # optional: "fastest" (default)
//! members = ["pg.public.accounts", "my.bank.accounts"]
//!
//! [[table]]
//! name = "orders"
//! columns = ["id bigint PRIMARY KEY", "total numeric(12,2)"]
//! striped = "hash"
//! key = "id"
//! copies = 2                           # each row on 2 members (a group)
//! write_quorum = 1                     # optional: default all copies
//! members = ["pg.public.orders", "my.shop.orders", "pg2.public.orders", "mongo.shop.orders"]
//! ```
//!
//! The column list is read by the SQL parser, as in `CREATE TABLE`.

use serde::Deserialize;
use toml::Spanned;

/// One `[[table]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTable {
    name: Spanned<String>,
    columns: Vec<String>,
    #[serde(default)]
    striped: Option<Spanned<String>>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    mirrored: Option<bool>,
    #[serde(default)]
    write_quorum: Option<u32>,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    copies: Option<u32>,
    members: Vec<String>,
}

/// How a declared table spreads its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredStriping {
    Hash {
        key: String,
        /// Copies of each row, with the write and read rules of mirrored
        /// tables among them (`None`: one).
        copies: Option<Copies>,
    },
    RoundRobin,
    Mirrored {
        write_quorum: Option<u32>,
        read: Option<String>,
    },
}

/// `copies`, `write_quorum` and `read` of a hash-striped table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copies {
    pub copies: u32,
    pub write_quorum: Option<u32>,
    pub read: Option<String>,
}

/// A logical table of the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    /// `[koios.][public.]name`, as written.
    pub name: String,
    /// Column definitions and table constraints, as in `CREATE TABLE (…)`.
    pub columns: Vec<String>,
    pub striping: DeclaredStriping,
    /// `source.schema.table` of each member.
    pub members: Vec<String>,
    /// `file:line` of the entry, for messages.
    pub at: String,
}

impl RawTable {
    /// The checked entry; `at` gives `file:line` of a byte offset.
    pub(super) fn check(self, at: &dyn Fn(usize) -> String) -> Result<TableSpec, String> {
        let place = at(self.name.span().start);
        let striped = match (self.striped, self.mirrored) {
            (None, Some(true)) => {
                if self.key.is_some() {
                    return Err(format!("{place}: table.key: a mirrored table takes no key"));
                }
                if self.copies.is_some() {
                    return Err(format!(
                        "{place}: table.copies: a mirrored table keeps every row on every member"
                    ));
                }
                DeclaredStriping::Mirrored {
                    write_quorum: self.write_quorum,
                    read: self.read,
                }
            }
            (Some(striped), None | Some(false)) => {
                let copies = match self.copies {
                    Some(copies) => Some(Copies {
                        copies,
                        write_quorum: self.write_quorum,
                        read: self.read,
                    }),
                    None if self.write_quorum.is_some() || self.read.is_some() => {
                        return Err(format!(
                            "{place}: table: write_quorum and read are options of mirrored tables and of striped tables with copies"
                        ));
                    }
                    None => None,
                };
                Self::striping(&striped, self.key, copies, &place, at)?
            }
            _ => {
                return Err(format!(
                    "{place}: table: give either striped = \"hash\" | \"round robin\" or mirrored = true"
                ));
            }
        };
        if self.columns.is_empty() || self.members.is_empty() {
            return Err(format!(
                "{place}: table: columns and members must not be empty"
            ));
        }
        Ok(TableSpec {
            name: self.name.into_inner(),
            columns: self.columns,
            striping: striped,
            members: self.members,
            at: place,
        })
    }

    fn striping(
        striped: &Spanned<String>,
        key: Option<String>,
        copies: Option<Copies>,
        place: &str,
        at: &dyn Fn(usize) -> String,
    ) -> Result<DeclaredStriping, String> {
        let key_given = key.is_some();
        let striping = striped.get_ref().to_ascii_lowercase();
        if copies.is_some() && striping != "hash" {
            return Err(format!(
                "{place}: table.copies: copies need hash striping (striped = \"hash\")"
            ));
        }
        Ok(match striping.as_str() {
            "hash" => match key {
                Some(key) => DeclaredStriping::Hash { key, copies },
                None => return Err(format!("{place}: table.key: hash striping needs a key")),
            },
            "round robin" | "round_robin" => {
                if key_given {
                    return Err(format!("{place}: table.key: round robin takes no key"));
                }
                DeclaredStriping::RoundRobin
            }
            other => {
                return Err(format!(
                    "{}: table.striped: '{other}' is not \"hash\" or \"round robin\"",
                    at(striped.span().start)
                ));
            }
        })
    }
}
