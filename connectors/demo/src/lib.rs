//! The embedded demo source: TPC-H data generated locally as Parquet.
//!
//! `koios serve` with no configuration needs data that involves no database
//! server; TPC-H is real, well-known data with published query answers. The
//! files are written once under the data directory and reused afterwards.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatchReader;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use tpchgen::generators::{
    CustomerGenerator, LineItemGenerator, NationGenerator, OrderGenerator, PartGenerator,
    PartSuppGenerator, RegionGenerator, SupplierGenerator,
};
use tpchgen_arrow::{
    CustomerArrow, LineItemArrow, NationArrow, OrderArrow, PartArrow, PartSuppArrow, RegionArrow,
    SupplierArrow,
};

use async_trait::async_trait;
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use koios_connector::{Connector, Source, SourceSpec};
use serde::Deserialize;
use serde::de::{self, Deserializer};

use datafusion::error::Result;

/// Options of a `kind = "demo"` source.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct DemoOptions {
    /// TPC-H scale factor: 1 is about 6 million `lineitem` rows.
    #[serde(default = "default_scale_factor", deserialize_with = "positive_number")]
    scale_factor: f64,
}

impl DemoOptions {
    fn from_spec(spec: &SourceSpec) -> datafusion::error::Result<Self> {
        spec.parse_options()
    }
}

fn default_scale_factor() -> f64 {
    DEFAULT_SCALE_FACTOR
}

/// A positive number, written as a float or an integer.
fn positive_number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    let value = f64::deserialize(deserializer)?;
    if value > 0.0 && value.is_finite() {
        Ok(value)
    } else {
        Err(de::Error::custom(format!(
            "must be a positive number, got {value}"
        )))
    }
}

/// `kind = "demo"`: generates TPC-H Parquet files on first use, then serves
/// them like a `files` source. Options: `scale_factor` (default 0.1).
/// The `url` names the directory the files live in.
#[derive(Debug, Default)]
pub struct DemoConnector;

#[async_trait]
impl Connector for DemoConnector {
    fn kind(&self) -> &'static str {
        "demo"
    }

    fn check_options(&self, spec: &SourceSpec) -> datafusion::error::Result<()> {
        DemoOptions::from_spec(spec).map(drop)
    }

    async fn connect(
        &self,
        spec: &SourceSpec,
        runtime: &Arc<RuntimeEnv>,
    ) -> datafusion::error::Result<Arc<dyn Source>> {
        let scale_factor = DemoOptions::from_spec(spec)?.scale_factor;
        let dir = spec
            .url
            .strip_prefix("file://")
            .ok_or_else(|| {
                DataFusionError::Configuration(format!(
                    "source '{}': a demo source needs a local directory url",
                    spec.name
                ))
            })?
            .to_string();
        let dir = std::path::PathBuf::from(dir);
        tokio::task::spawn_blocking(move || ensure_demo(&dir, scale_factor))
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?
            .map_err(|e| DataFusionError::Execution(format!("source '{}': {e}", spec.name)))?;
        let files = SourceSpec {
            kind: "files".into(),
            options: Default::default(),
            ..spec.clone()
        };
        koios_connector_files::FilesConnector
            .connect(&files, runtime)
            .await
    }
}

/// Scale factor of the demo when none is given (lineitem ≈ 600 000 rows).
pub const DEFAULT_SCALE_FACTOR: f64 = 0.1;

/// The eight TPC-H tables, in generation order.
pub const TABLES: [&str; 8] = [
    "region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem",
];

const MARKER: &str = ".koios-demo-complete";

/// Makes sure `dir` holds the demo at `scale_factor`, generating it if needed.
///
/// Generation writes into a sibling temporary directory and renames it into
/// place, so an interrupted run never leaves a half-written demo behind.
pub fn ensure_demo(dir: &Path, scale_factor: f64) -> Result<PathBuf> {
    // Sessions of one process attach concurrently (tests start several
    // engines at once): generate once, the others wait and reuse.
    static GENERATING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = GENERATING.lock().unwrap_or_else(|p| p.into_inner());

    let marker = dir.join(MARKER);
    let wanted = format!("scale_factor={scale_factor}\n");
    let complete = || std::fs::read_to_string(&marker).is_ok_and(|m| m == wanted);
    if complete() {
        return Ok(dir.to_path_buf());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| io_error(format!("cannot create {}", parent.display()), e))?;
    // Unique per process and attempt, so concurrent processes never share it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let tmp = parent.join(format!(
        ".{}.tmp-{}-{nanos}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("demo"),
        std::process::id()
    ));
    std::fs::create_dir_all(&tmp)
        .map_err(|e| io_error(format!("cannot create {}", tmp.display()), e))?;

    tracing::info!(dir = %dir.display(), scale_factor, "generating TPC-H demo data");
    let started = std::time::Instant::now();
    let generated = generate(&tmp, scale_factor, &wanted);
    if let Err(e) = generated {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if complete() {
        // Another process finished first; its copy is as good as ours.
        let _ = std::fs::remove_dir_all(&tmp);
        return Ok(dir.to_path_buf());
    }
    let _ = std::fs::remove_dir_all(dir);
    if let Err(e) = std::fs::rename(&tmp, dir) {
        let _ = std::fs::remove_dir_all(&tmp);
        if !complete() {
            return Err(io_error(
                format!("cannot move demo data to {}", dir.display()),
                e,
            ));
        }
    }
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "demo data ready"
    );
    Ok(dir.to_path_buf())
}

fn generate(tmp: &Path, sf: f64, marker_text: &str) -> Result<()> {
    write_table(
        tmp,
        "region",
        RegionArrow::new(RegionGenerator::new(sf, 1, 1)),
    )?;
    write_table(
        tmp,
        "nation",
        NationArrow::new(NationGenerator::new(sf, 1, 1)),
    )?;
    write_table(
        tmp,
        "supplier",
        SupplierArrow::new(SupplierGenerator::new(sf, 1, 1)),
    )?;
    write_table(
        tmp,
        "customer",
        CustomerArrow::new(CustomerGenerator::new(sf, 1, 1)),
    )?;
    write_table(tmp, "part", PartArrow::new(PartGenerator::new(sf, 1, 1)))?;
    write_table(
        tmp,
        "partsupp",
        PartSuppArrow::new(PartSuppGenerator::new(sf, 1, 1)),
    )?;
    write_table(
        tmp,
        "orders",
        OrderArrow::new(OrderGenerator::new(sf, 1, 1)),
    )?;
    write_table(
        tmp,
        "lineitem",
        LineItemArrow::new(LineItemGenerator::new(sf, 1, 1)),
    )?;
    std::fs::write(tmp.join(MARKER), marker_text)
        .map_err(|e| io_error("cannot write the demo marker", e))
}

fn write_table<I>(dir: &Path, name: &str, batches: I) -> Result<()>
where
    I: RecordBatchReader,
{
    let path = dir.join(format!("{name}.parquet"));
    let file = std::fs::File::create(&path)
        .map_err(|e| io_error(format!("cannot create {}", path.display()), e))?;
    let schema: Arc<Schema> = batches.schema();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build();
    let parquet_err = |e: datafusion::parquet::errors::ParquetError| DataFusionError::from(e);
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).map_err(parquet_err)?;
    for batch in batches {
        let batch = batch.map_err(DataFusionError::from)?;
        writer.write(&batch).map_err(parquet_err)?;
    }
    writer.close().map_err(parquet_err)?;
    Ok(())
}

/// An I/O failure with what Koios was doing when it happened.
fn io_error(context: impl Into<String>, error: std::io::Error) -> DataFusionError {
    DataFusionError::IoError(error).context(context.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(options: &str) -> SourceSpec {
        SourceSpec {
            url: "file:///tmp/demo".into(),
            ..SourceSpec::from_toml("demo", "demo", options).expect("toml")
        }
    }

    #[test]
    fn scale_factor_is_a_positive_number() {
        assert_eq!(
            DemoOptions::from_spec(&spec(""))
                .expect("default")
                .scale_factor,
            0.1
        );
        assert_eq!(
            DemoOptions::from_spec(&spec("scale_factor = 2"))
                .expect("integer")
                .scale_factor,
            2.0
        );
        assert_eq!(
            DemoOptions::from_spec(&spec("scale_factor = 0.01"))
                .expect("float")
                .scale_factor,
            0.01
        );
        for bad in [
            "scale_factor = 0",
            "scale_factor = -1",
            "scale_factor = 'big'",
            "scale = 1",
        ] {
            let err = DemoOptions::from_spec(&spec(bad))
                .expect_err(bad)
                .to_string();
            assert!(err.contains("source 'demo'"), "{bad}: {err}");
        }
    }
}
