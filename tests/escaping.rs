//! Hostile strings reach PostgreSQL and MariaDB exactly (the SQL-injection
//! issue): a seeded generator of strings made of quotes, doubled quotes,
//! backslashes before quotes, control characters, `$$`, `--`, `/*`, `;`,
//! LIKE wildcards and Unicode, used as literals (plain and `E'…'`) and as
//! bound parameters (binary and text format, one-off and prepared) in `=`,
//! `<>`, `<`, `LIKE` and `IN (…)`, in filters pushed into scans, in whole
//! pushed-down subplans, as dynamic join filters and in INSERT. Every answer
//! is compared with the same query over a local copy of the data; afterwards
//! each backend's own client checks that the tables, the rows inserted and
//! a sentinel table are exactly what they must be.
//!
//! 10 000 cases run against PostgreSQL, 10 000 against MariaDB and 3 000
//! against a PostgreSQL database configured with
//! `standard_conforming_strings = off`. `KOIOS_ESCAPING_CASES` sets the
//! number for all three; `KOIOS_ESCAPING_SEED` replays a run (each failure
//! prints its seed).

mod support;

use std::collections::BTreeMap;
use std::error::Error;

use support::{MyTestDatabase, PgTestDatabase, TestServer};
use tokio_postgres::types::{Format, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, SimpleQueryMessage, Statement};

/// Rows every table starts with: fixed traps and generated strings.
const CORPUS_GENERATED: usize = 200;

/// Plain rows after the corpus, so a remote table outgrows the local key
/// table and the join builds on the keys (pushing them into the scan).
const FILLER_ROWS: usize = 3000;

/// The filler row after the corpus at `i`.
fn filler(i: usize) -> String {
    format!("filler {i}")
}

/// The rows of the remote tables before the cases: id → value.
fn initial_rows(corpus: &[String]) -> BTreeMap<i32, String> {
    corpus
        .iter()
        .cloned()
        .chain((0..FILLER_ROWS).map(filler))
        .enumerate()
        .map(|(i, s)| (i as i32, s))
        .collect()
}

const TRAPS: &[&str] = &[
    "",
    " ",
    "plain",
    "it's",
    "O'Reilly''s",
    "O'Reilly's",
    "\\",
    "\\'",
    "\\\\'",
    "\\' OR 1=1) --",
    "' OR '1'='1",
    "'; DROP TABLE sentinel; --",
    "$$dollar$$",
    "$tag$x$tag$",
    "/* block */",
    "-- line",
    "semi;colon",
    "\"double\"",
    "`back`",
    "%",
    "_",
    "a%b",
    "a_b",
    "\\%",
    "tab\there",
    "new\nline",
    "\u{1}\u{1f}",
    "ünïcødé ✓ 日本",
    "\u{1F600}",
    "\u{202E}rtl",
    "E'x'",
    "a ",
];

/// Pieces generated strings are made of.
const PIECES: &[&str] = &[
    "'",
    "''",
    "\\",
    "\\'",
    "\\\\",
    "\"",
    "`",
    "$",
    "$$",
    "--",
    "/*",
    "*/",
    ";",
    "#",
    "%",
    "_",
    "a",
    "b",
    "Z",
    "0",
    " ",
    "\t",
    "\n",
    "\r",
    "\u{7}",
    "\u{1b}",
    "é",
    "日",
    "\u{1F600}",
    "E'",
    "OR 1=1",
    ")",
    "(",
    "?",
    "$1",
    ":x",
];

/// A small seeded generator (xorshift): runs are reproducible by seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn string(&mut self) -> String {
        let pieces = self.below(10);
        (0..pieces)
            .map(|_| PIECES[self.below(PIECES.len())])
            .collect()
    }
}

#[derive(Debug, Clone, Copy)]
enum Path {
    /// A filter on one remote table (pushed into its scan).
    Scan,
    /// A join within the source (pushed as one subplan) with the filter.
    Subplan,
    /// A join with a local table: the build side's strings go into the
    /// remote scan's SQL as a dynamic IN list / range.
    Dynamic,
    Insert,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Eq,
    NotEq,
    Lt,
    Like,
    In,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    /// `'…'` in a simple-protocol text.
    Literal,
    /// `E'…'` in a simple-protocol text.
    EscapeLiteral,
    /// `$1` bound in binary format, statement parsed for this execution.
    ParamBinary,
    /// `$1` bound in text format.
    ParamText,
    /// `$1` bound to a statement prepared once per query shape.
    Prepared,
}

/// A text parameter sent in the text format (tokio-postgres sends binary).
#[derive(Debug)]
struct TextParam(String);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    fn encode_format(&self, _ty: &Type) -> Format {
        Format::Text
    }

    to_sql_checked!();
}

/// A string as Koios reads it in `'…'` (standard strings).
fn literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}

/// A string as Koios reads it in `E'…'`.
fn escape_literal(value: &str) -> String {
    format!("E'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// One backend under test: where its tables are for Koios.
struct Target {
    /// `source.schema`, e.g. `pg.public`.
    remote: String,
    /// Prefix of the local copies in `koios.public`.
    local: &'static str,
}

struct Run<'a> {
    client: &'a Client,
    target: &'a Target,
    rng: Rng,
    seed: u64,
    corpus: Vec<String>,
    /// `batch → strings` of `koios.public.<local>_keys`.
    key_batches: usize,
    prepared: BTreeMap<String, Statement>,
    /// Rows the INSERT cases wrote: id → value.
    inserted: BTreeMap<i32, String>,
    failures: Vec<String>,
    counts: BTreeMap<String, usize>,
    /// Answers of the local copies, by query and values (they repeat).
    local_answers: BTreeMap<(String, Vec<String>), Result<Vec<i64>, String>>,
}

impl Run<'_> {
    fn value(&mut self) -> String {
        if self.rng.below(2) == 0 {
            self.corpus[self.rng.below(self.corpus.len())].clone()
        } else {
            self.rng.string()
        }
    }

    fn mode(&mut self) -> Mode {
        [
            Mode::Literal,
            Mode::EscapeLiteral,
            Mode::ParamBinary,
            Mode::ParamText,
            Mode::Prepared,
        ][self.rng.below(5)]
    }

    /// Runs `template` (`{T}`/`{U}` the tables, `{V}`/`{W}` the operands),
    /// on the remote tables and on the local copies, and compares the ids.
    async fn compare(&mut self, template: &str, values: &[String], mode: Mode, what: &str) {
        let remote = template
            .replace("{T}", &format!("{}.esc_t", self.target.remote))
            .replace("{U}", &format!("{}.esc_u", self.target.remote));
        let local = template
            .replace("{T}", &format!("koios.public.{}_t", self.target.local))
            .replace("{U}", &format!("koios.public.{}_u", self.target.local));
        let got = self.ids(&remote, values, mode).await;
        let key = (local, values.to_vec());
        let want = match self.local_answers.get(&key) {
            Some(want) => want.clone(),
            None => {
                let want = self.ids(&key.0, values, Mode::Literal).await;
                self.local_answers.insert(key, want.clone());
                want
            }
        };
        *self.counts.entry(format!("{what} {mode:?}")).or_default() += 1;
        if got != want && self.failures.len() < 20 {
            self.failures.push(format!(
                "seed {} {what} {mode:?} {remote} with {values:?}: remote {got:?}, local {want:?}",
                self.seed
            ));
        }
    }

    /// The sorted `id`s `sql` returns, with `{V}`, `{W}` bound per `mode`.
    async fn ids(&mut self, sql: &str, values: &[String], mode: Mode) -> Result<Vec<i64>, String> {
        let placeholders = ["{V}", "{W}"];
        let mut ids = match mode {
            Mode::Literal | Mode::EscapeLiteral => {
                let mut text = sql.to_string();
                for (p, v) in placeholders.iter().zip(values) {
                    let written = if mode == Mode::Literal {
                        literal(v)
                    } else {
                        escape_literal(v)
                    };
                    text = text.replace(p, &written);
                }
                let messages = self
                    .client
                    .simple_query(&text)
                    .await
                    .map_err(|e| describe(&e))?;
                messages
                    .iter()
                    .filter_map(|m| match m {
                        SimpleQueryMessage::Row(row) => row.get(0).map(|v| v.parse().unwrap_or(-1)),
                        _ => None,
                    })
                    .collect::<Vec<i64>>()
            }
            Mode::ParamBinary | Mode::ParamText | Mode::Prepared => {
                let mut text = sql.to_string();
                for (i, p) in placeholders.iter().enumerate() {
                    text = text.replace(p, &format!("${}::text", i + 1));
                }
                let text_params: Vec<TextParam> =
                    values.iter().map(|v| TextParam(v.clone())).collect();
                let params: Vec<&(dyn ToSql + Sync)> = match mode {
                    Mode::ParamText => text_params.iter().map(|v| v as _).collect(),
                    _ => values.iter().map(|v| v as _).collect(),
                };
                let rows = if mode == Mode::Prepared {
                    let statement = match self.prepared.get(&text) {
                        Some(s) => s.clone(),
                        None => {
                            let s = self.client.prepare(&text).await.map_err(|e| describe(&e))?;
                            self.prepared.insert(text.clone(), s.clone());
                            s
                        }
                    };
                    self.client.query(&statement, &params).await
                } else {
                    self.client.query(&text, &params).await
                };
                rows.map_err(|e| describe(&e))?
                    .iter()
                    .map(|r| r.try_get::<_, i32>(0).map(i64::from).unwrap_or(-1))
                    .collect()
            }
        };
        ids.sort_unstable();
        Ok(ids)
    }

    async fn case(&mut self, id: i32) {
        let path = [Path::Scan, Path::Subplan, Path::Dynamic, Path::Insert][self.rng.below(4)];
        let op = [Op::Eq, Op::NotEq, Op::Lt, Op::Like, Op::In][self.rng.below(5)];
        let mode = self.mode();
        let (v, w) = (self.value(), self.value());
        let predicate = |column: &str| match op {
            Op::Eq => format!("{column} = {{V}}"),
            Op::NotEq => format!("{column} <> {{V}}"),
            Op::Lt => format!("{column} < {{V}}"),
            Op::Like => format!("{column} LIKE {{V}}"),
            Op::In => format!("{column} IN ({{V}}, {{W}})"),
        };
        let values = match op {
            Op::In => vec![v, w],
            _ => vec![v],
        };
        match path {
            Path::Scan => {
                let sql = format!("SELECT id FROM {{T}} WHERE {}", predicate("s"));
                self.compare(&sql, &values, mode, &format!("scan {op:?}"))
                    .await;
            }
            Path::Subplan => {
                let sql = format!(
                    "SELECT a.id FROM {{T}} a JOIN {{U}} b ON a.id = b.id WHERE {}",
                    predicate("b.s")
                );
                self.compare(&sql, &values, mode, &format!("subplan {op:?}"))
                    .await;
            }
            Path::Dynamic => {
                // The batch number is the operand here; the strings of the
                // batch travel from the local build side into remote SQL.
                let batch = self.rng.below(self.key_batches).to_string();
                let sql = format!(
                    "SELECT t.id FROM {{T}} t JOIN koios.public.{}_keys k ON t.s = k.s WHERE k.batch = {{V}}",
                    self.target.local
                );
                let sql = sql.replace("{V}", "CAST({V} AS INT)");
                self.compare(&sql, &[batch], mode, "dynamic").await;
            }
            Path::Insert => {
                let v = values[0].clone();
                let sql = format!(
                    "INSERT INTO {}.esc_ins (id, s) VALUES ({id}, {{V}})",
                    self.target.remote
                );
                let outcome = match mode {
                    Mode::Literal | Mode::EscapeLiteral => {
                        let written = if mode == Mode::Literal {
                            literal(&v)
                        } else {
                            escape_literal(&v)
                        };
                        self.client
                            .simple_query(&sql.replace("{V}", &written))
                            .await
                            .map(|_| ())
                    }
                    Mode::ParamText => self
                        .client
                        .execute(&sql.replace("{V}", "$1::text"), &[&TextParam(v.clone())])
                        .await
                        .map(|_| ()),
                    _ => self
                        .client
                        .execute(&sql.replace("{V}", "$1::text"), &[&v])
                        .await
                        .map(|_| ()),
                };
                *self.counts.entry(format!("insert {mode:?}")).or_default() += 1;
                match outcome {
                    Ok(()) => {
                        self.inserted.insert(id, v);
                    }
                    Err(e) if self.failures.len() < 20 => self.failures.push(format!(
                        "seed {} insert {mode:?} of {v:?}: {}",
                        self.seed,
                        describe(&e)
                    )),
                    Err(_) => {}
                }
            }
        }
    }
}

fn describe(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_else(|| e.to_string())
}

/// Cases per backend: `KOIOS_ESCAPING_CASES`, else `default`.
fn cases(default: usize) -> usize {
    std::env::var("KOIOS_ESCAPING_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seed() -> u64 {
    std::env::var("KOIOS_ESCAPING_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        })
}

/// The fixed traps and `CORPUS_GENERATED` generated strings.
fn corpus(rng: &mut Rng) -> Vec<String> {
    let mut corpus: Vec<String> = TRAPS.iter().map(|s| s.to_string()).collect();
    while corpus.len() < TRAPS.len() + CORPUS_GENERATED {
        let s = rng.string();
        if !corpus.contains(&s) {
            corpus.push(s);
        }
    }
    corpus
}

/// Makes the local copies and the dynamic-filter key table in Koios.
async fn local_copies(client: &Client, target: &Target, rng: &mut Rng, corpus: &[String]) -> usize {
    for table in ["t", "u"] {
        client
            .simple_query(&format!(
                "CREATE TABLE koios.public.{}_{table} AS SELECT * FROM {}.esc_{table}",
                target.local, target.remote
            ))
            .await
            .expect("local copy");
    }
    // Batches of 1–8 strings: corpus strings (which match) and new ones.
    let batches = 64;
    let mut rows = Vec::new();
    for batch in 0..batches {
        for _ in 0..1 + rng.below(8) {
            let s = if rng.below(2) == 0 {
                corpus[rng.below(corpus.len())].clone()
            } else {
                rng.string()
            };
            rows.push(format!("({batch}, {})", literal(&s)));
        }
    }
    // Strings of the remote columns' Arrow type (Utf8), as a join key
    // compared without a cast.
    client
        .simple_query(&format!(
            "CREATE TABLE koios.public.{}_keys AS SELECT CAST(column1 AS INT) AS batch, \
             arrow_cast(column2, 'Utf8') AS s FROM (VALUES {})",
            target.local,
            rows.join(", ")
        ))
        .await
        .expect("key table");
    batches
}

/// Runs the cases against `target`; returns the rows the INSERT cases wrote.
async fn run_cases(
    server: &TestServer,
    target: &Target,
    seed: u64,
    total: usize,
) -> BTreeMap<i32, String> {
    let client = server.connect("koios").await;
    let mut rng = Rng(seed);
    let corpus = corpus(&mut Rng(0x5eed_c0de));
    let key_batches = local_copies(&client, target, &mut rng, &corpus).await;
    let mut run = Run {
        client: &client,
        target,
        rng,
        seed,
        corpus,
        key_batches,
        prepared: BTreeMap::new(),
        inserted: BTreeMap::new(),
        failures: Vec::new(),
        counts: BTreeMap::new(),
        local_answers: BTreeMap::new(),
    };
    let started = std::time::Instant::now();
    for i in 0..total {
        run.case(i32::try_from(i).unwrap_or(i32::MAX)).await;
    }
    eprintln!(
        "{}: {total} cases in {:.1} s: {:?}",
        target.remote,
        started.elapsed().as_secs_f64(),
        run.counts
    );
    assert!(
        run.failures.is_empty(),
        "{} cases answered differently from the local copy:\n{}",
        target.remote,
        run.failures.join("\n")
    );
    run.inserted
}

/// What EXPLAIN ANALYZE says each path sends, so the cases exercise what
/// they claim to: the string in the scan's SQL, inside the subplan's, and
/// in the dynamic IN list.
async fn check_paths(server: &TestServer, target: &Target, subplan: bool, dynamic: bool) {
    let client = server.connect("koios").await;
    let plan = |sql: String| {
        let client = &client;
        async move {
            let rows = client.simple_query(&sql).await.expect("explain");
            rows.iter()
                .filter_map(|m| match m {
                    SimpleQueryMessage::Row(r) => r.get(1).map(str::to_string),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("\n")
        }
    };
    let r = &target.remote;
    let scan = plan(format!(
        "EXPLAIN SELECT id FROM {r}.esc_t WHERE s = 'it''s'"
    ))
    .await;
    assert!(scan.contains("= 'it''s'"), "{scan}");
    if subplan {
        let sub = plan(format!(
            "EXPLAIN SELECT a.id FROM {r}.esc_t a JOIN {r}.esc_u b ON a.id = b.id WHERE b.s = 'it''s'"
        ))
        .await;
        assert!(
            sub.contains("RemoteSubplan") && sub.contains("'it''s'"),
            "{sub}"
        );
    }
    if dynamic {
        let dynamic_plan = plan(format!(
            "EXPLAIN ANALYZE SELECT t.id FROM {r}.esc_t t JOIN koios.public.{}_keys k ON t.s = k.s WHERE k.batch = 3",
            target.local
        ))
        .await;
        assert!(dynamic_plan.contains("\"s\" IN ("), "{dynamic_plan}");
    }
}

const PG_TABLES: &str = "
CREATE TABLE esc_t (id int PRIMARY KEY, s text);
CREATE TABLE esc_u (id int PRIMARY KEY, s text);
CREATE TABLE esc_ins (id int PRIMARY KEY, s text);
";

async fn pg_direct(database: &str) -> Client {
    support::postgres_client(database).await
}

/// A PostgreSQL test database with the tables, loaded with the corpus
/// through bind parameters (by PostgreSQL's own client).
async fn pg_database(standard_strings_off: bool) -> PgTestDatabase {
    let database = PgTestDatabase::create();
    database.execute(PG_TABLES).expect("tables");
    let direct = pg_direct(&database.name).await;
    let rows = initial_rows(&corpus(&mut Rng(0x5eed_c0de)));
    let ids: Vec<i32> = rows.keys().copied().collect();
    let values: Vec<&str> = rows.values().map(String::as_str).collect();
    for table in ["esc_t", "esc_u"] {
        direct
            .execute(
                &format!("INSERT INTO {table} SELECT * FROM unnest($1::int[], $2::text[])"),
                &[&ids, &values],
            )
            .await
            .expect("corpus rows");
    }
    direct.execute("ANALYZE", &[]).await.expect("analyze");
    if standard_strings_off {
        database
            .execute(&format!(
                "ALTER DATABASE {} SET standard_conforming_strings = off",
                database.name
            ))
            .expect("standard_conforming_strings off");
        let check = pg_direct(&database.name).await;
        let row = check
            .query_one("SHOW standard_conforming_strings", &[])
            .await
            .expect("show");
        assert_eq!(row.get::<_, String>(0), "off");
    }
    database
}

/// After the cases: the corpus tables are untouched, the inserted rows are
/// exactly the values written, and the sentinel is there.
async fn pg_check(database: &PgTestDatabase, inserted: &BTreeMap<i32, String>) {
    let direct = pg_direct(&database.name).await;
    let expected = initial_rows(&corpus(&mut Rng(0x5eed_c0de)));
    for table in ["esc_t", "esc_u"] {
        let rows = direct
            .query(&format!("SELECT id, s FROM {table} ORDER BY id"), &[])
            .await
            .expect("reads the corpus back");
        let got: BTreeMap<i32, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        assert_eq!(got, expected, "{table} changed");
    }
    let rows = direct
        .query("SELECT id, s FROM esc_ins ORDER BY id", &[])
        .await
        .expect("reads the inserted rows");
    let got: BTreeMap<i32, String> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        &got, inserted,
        "the inserted rows differ from the values written"
    );
    let sentinel = direct
        .query_one("SELECT ok FROM sentinel", &[])
        .await
        .expect("the sentinel table survives");
    assert!(sentinel.get::<_, bool>(0));
}

async fn pg_run(standard_strings_off: bool) {
    let database = pg_database(standard_strings_off).await;
    let source = if standard_strings_off { "pg_off" } else { "pg" };
    let text = format!(
        "[[source]]\nname = \"{source}\"\nkind = \"postgres\"\nurl = \"postgres://postgres@127.0.0.1:5432/{}\"\n",
        database.name
    );
    let server = TestServer::start_toml(&text, &|_| None).await;
    let target = Target {
        remote: format!("{source}.public"),
        local: if standard_strings_off { "pgoff" } else { "pg" },
    };
    let seed = seed();
    // The server with non-standard strings checks one setting more, with
    // fewer cases; each backend gets the full 10 000.
    let total = cases(if standard_strings_off { 3_000 } else { 10_000 });
    let inserted = run_cases(&server, &target, seed, total).await;
    check_paths(&server, &target, true, true).await;
    pg_check(&database, &inserted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_reach_postgres_exactly() {
    pg_run(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_reach_postgres_with_nonstandard_strings_exactly() {
    pg_run(true).await;
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02X}")).collect()
}

/// Rows of `sql` (id, HEX(s)) read with MariaDB's own client.
fn mariadb_rows(database: &str, sql: &str) -> BTreeMap<i32, String> {
    support::mariadb_output(Some(database), sql)
        .lines()
        .map(|line| {
            let (id, hex) = line.split_once('\t').unwrap_or((line, ""));
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect();
            (
                id.parse().expect("an id"),
                String::from_utf8(bytes).expect("UTF-8 text"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_strings_reach_mariadb_exactly() {
    let database = MyTestDatabase::create();
    let expected = initial_rows(&corpus(&mut Rng(0x5eed_c0de)));
    let mut script = String::new();
    for table in ["esc_t", "esc_u", "esc_ins"] {
        script.push_str(&format!(
            "CREATE TABLE {table} (id int PRIMARY KEY, s text CHARACTER SET utf8mb4 COLLATE utf8mb4_bin);\n"
        ));
    }
    for table in ["esc_t", "esc_u"] {
        // Hex literals: the script itself holds no quoted value.
        let rows: Vec<String> = expected
            .iter()
            .map(|(i, s)| format!("({i}, CONVERT(X'{}' USING utf8mb4))", hex(s)))
            .collect();
        script.push_str(&format!(
            "INSERT INTO {table} VALUES {};\n",
            rows.join(", ")
        ));
    }
    database.execute(&script).expect("tables and corpus");
    let text = format!(
        "[[source]]\nname = \"my\"\nkind = \"mysql\"\nurl = \"mysql://root@127.0.0.1:3306/{}\"\n",
        database.name
    );
    let server = TestServer::start_toml(&text, &|_| None).await;
    let target = Target {
        remote: format!("my.{}", database.name),
        local: "my",
    };
    let seed = seed();
    let inserted = run_cases(&server, &target, seed, cases(10_000)).await;
    // MariaDB's text comparisons are not DataFusion's (PAD SPACE, collations):
    // no subplan or dynamic filter carries a string there, only scans.
    check_paths(&server, &target, false, false).await;
    for table in ["esc_t", "esc_u"] {
        let got = mariadb_rows(
            &database.name,
            &format!("SELECT id, HEX(s) FROM {table} ORDER BY id"),
        );
        assert_eq!(got, expected, "{table} changed");
    }
    let got = mariadb_rows(&database.name, "SELECT id, HEX(s) FROM esc_ins ORDER BY id");
    assert_eq!(
        got, inserted,
        "the inserted rows differ from the values written"
    );
    let sentinel = mariadb_rows(&database.name, "SELECT ok, HEX(ok) FROM sentinel");
    assert_eq!(sentinel.len(), 1, "the sentinel table survives");
}
