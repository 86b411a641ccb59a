//! The DuckDB peer of `tpch_federated`: DuckDB 1.4 with its postgres and
//! mysql scanners over the same split (`duckdb_peer.py`, run with the
//! Python of a virtual environment holding DuckDB and the scanners, named
//! by `KOIOS_BENCH_DUCKDB_PYTHON`), its answers compared with the
//! reference's.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How to run the peer.
pub struct DuckDb {
    python: PathBuf,
    part: PathBuf,
    database: String,
}

impl DuckDb {
    /// The peer, if `KOIOS_BENCH_DUCKDB_PYTHON` names a Python to run it.
    pub fn from_env(part: PathBuf, database: &str) -> Option<DuckDb> {
        let python = PathBuf::from(std::env::var_os("KOIOS_BENCH_DUCKDB_PYTHON")?);
        Some(DuckDb {
            python,
            part,
            database: database.to_string(),
        })
    }

    /// The best of `runs` of the query in `file`, and its rows as text.
    pub fn run(&self, file: &Path, runs: usize) -> Result<(Duration, Vec<Vec<String>>), String> {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/tpch-federated/duckdb_peer.py");
        let output = std::process::Command::new(&self.python)
            .arg(script)
            .arg(format!(
                "host=127.0.0.1 port=5432 user=postgres dbname={}",
                self.database
            ))
            .arg(format!(
                "host=127.0.0.1 port=3306 user=root database={}",
                self.database
            ))
            .arg(&self.part)
            .arg(runs.to_string())
            .arg(file)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.python.display()))?;
        if !output.status.success() {
            return Err(String::from_utf8_lossy(&output.stderr).into_owned());
        }
        let line = String::from_utf8_lossy(&output.stdout);
        let answer: serde_json::Value =
            serde_json::from_str(line.trim()).map_err(|e| format!("peer output: {e}"))?;
        if let Some(error) = answer["error"].as_str() {
            return Err(error.to_string());
        }
        let seconds = answer["seconds"].as_f64().ok_or("peer output: no time")?;
        let rows = answer["rows"]
            .as_array()
            .ok_or("peer output: no rows")?
            .iter()
            .map(|row| {
                row.as_array()
                    .map(|values| {
                        values
                            .iter()
                            .map(|v| v.as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default()
            })
            .collect();
        Ok((Duration::from_secs_f64(seconds), rows))
    }
}

/// Whether two answers hold the same rows, in any order, numbers compared
/// to the cent (engines print decimals and averages at other scales).
pub fn same_answer(ours: &[Vec<String>], theirs: &[Vec<String>]) -> bool {
    let normal = |rows: &[Vec<String>]| {
        let mut rows: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                row.iter()
                    .map(|value| match value.trim().parse::<f64>() {
                        Ok(number) => format!("{:.2}", number),
                        Err(_) => value.trim().to_string(),
                    })
                    .collect()
            })
            .collect();
        rows.sort();
        rows
    };
    normal(ours) == normal(theirs)
}
