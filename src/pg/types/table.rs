//! psql's aligned output: a header centred over each column, a rule, the
//! rows with numbers right-aligned and text left-aligned, and a `(n rows)`
//! footer. Used by `koios query` (rendering Arrow batches) and by the
//! `koios sources` / `koios status` commands (rendering a remote answer),
//! so both print tables the way psql users read them.

use postgres_types::Type;

/// One answer as text: column names, which columns are numeric (printed
/// right-aligned, as psql does), and the rows (`None` is NULL, printed
/// empty).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextTable {
    pub columns: Vec<String>,
    pub right_aligned: Vec<bool>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// Whether psql right-aligns a column of this type (its numeric types).
pub fn is_numeric_type(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::NUMERIC
            | Type::OID
    )
}

impl TextTable {
    /// The table as psql prints it.
    pub fn render(&self) -> String {
        let cell = |row: &[Option<String>], i: usize| -> String {
            row.get(i).and_then(|v| v.clone()).unwrap_or_default()
        };
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                self.rows
                    .iter()
                    .map(|r| cell(r, i).chars().count())
                    .chain([name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self
            .columns
            .iter()
            .zip(&widths)
            .map(|(name, width)| {
                let pad = width - name.chars().count();
                format!(
                    " {}{}{} ",
                    " ".repeat(pad / 2),
                    name,
                    " ".repeat(pad - pad / 2)
                )
            })
            .collect();
        out.push_str(header.join("|").trim_end());
        out.push('\n');
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        for row in &self.rows {
            let cells: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, width)| {
                    let value = cell(row, i);
                    if self.right_aligned.get(i).copied().unwrap_or(false) {
                        format!(" {value:>width$} ")
                    } else {
                        format!(" {value:<width$} ")
                    }
                })
                .collect();
            out.push_str(cells.join("|").trim_end());
            out.push('\n');
        }
        let n = self.rows.len();
        out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligns_like_psql() {
        let table = TextTable {
            columns: vec!["name".into(), "state".into(), "n".into()],
            right_aligned: vec![false, false, true],
            rows: vec![
                vec![Some("pg".into()), Some("ready".into()), Some("12".into())],
                vec![Some("offline".into()), None, Some("3".into())],
            ],
        };
        assert_eq!(
            table.render(),
            "  name   | state | n\n\
             ---------+-------+----\n \
             pg      | ready | 12\n \
             offline |       |  3\n\
             (2 rows)\n"
        );
    }
}
