//! MongoDB's values as Arrow: columns inferred from sampled documents or
//! declared ([`schema`]), raw BSON decoded into Arrow builders ([`decode`]),
//! and `Decimal128` ↔ Arrow decimals ([`decimal`]).

pub mod decimal;
pub mod decode;
pub mod schema;
