//! What runs inside MongoDB: filters as `find` filters ([`filter`]), ORDER BY
//! … LIMIT as the `find` command's sort and limit ([`topn`]), and GROUP BY …
//! count(*) as an aggregation pipeline ([`aggregate`]).

pub mod aggregate;
pub mod filter;
pub mod topn;
