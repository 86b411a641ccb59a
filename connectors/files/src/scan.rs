//! Reads: every table of a `files` source is a DataFusion `ListingTable`
//! over one file or one directory of files, so projection, filter
//! (row-group and page pruning for Parquet) and limit pushdown come from
//! DataFusion.

use std::sync::Arc;

use datafusion::datasource::file_format::FileFormat;
use datafusion::datasource::file_format::csv::CsvFormat;
use datafusion::datasource::file_format::json::JsonFormat;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionState;

use crate::options::FileOptions;
use crate::types::FileKind;

/// The table over `url` (a file, or a directory whose files share `kind`
/// and `extension`), its schema read from the data.
pub(crate) async fn open_table(
    source: &str,
    options: &FileOptions,
    url: ListingTableUrl,
    kind: FileKind,
    extension: &str,
    state: &SessionState,
) -> Result<Arc<ListingTable>> {
    let config = ListingTableConfig::new(url.clone())
        .with_listing_options(listing_options(options, kind, extension))
        .infer_schema(state)
        .await
        .map_err(|e| {
            DataFusionError::Execution(format!(
                "source '{source}': cannot read the schema of {url}: {e}"
            ))
        })?;
    Ok(Arc::new(ListingTable::try_new(config)?))
}

/// How DataFusion reads files of `kind` with `extension`.
fn listing_options(options: &FileOptions, kind: FileKind, extension: &str) -> ListingOptions {
    let format: Arc<dyn FileFormat> = match kind {
        FileKind::Parquet => Arc::new(ParquetFormat::default()),
        FileKind::Csv => Arc::new(
            CsvFormat::default()
                .with_has_header(options.csv_has_header)
                .with_delimiter(options.csv_delimiter),
        ),
        FileKind::Json => Arc::new(JsonFormat::default()),
    };
    ListingOptions::new(format).with_file_extension(extension.to_string())
}
