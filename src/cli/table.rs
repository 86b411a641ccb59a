//! Text rows printed as an aligned table with a header, like psql's
//! default output.

/// The rows of one answer: column names and text values (`None` is NULL,
/// printed empty as psql does).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TextRows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl TextRows {
    /// The table as psql prints it, with a `(n rows)` footer.
    pub fn render(&self) -> String {
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(i, name)| {
                self.rows
                    .iter()
                    .map(|r| {
                        r.get(i)
                            .and_then(|v| v.as_deref())
                            .unwrap_or("")
                            .chars()
                            .count()
                    })
                    .chain([name.chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!(" {cell:<width$} "))
                .collect::<Vec<_>>()
                .join("|")
                .trim_end()
                .to_string()
        };
        let mut out = line(self.columns.iter().map(String::as_str).collect());
        out.push('\n');
        out.push_str(
            &widths
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("+"),
        );
        out.push('\n');
        for row in &self.rows {
            out.push_str(&line(
                row.iter().map(|v| v.as_deref().unwrap_or("")).collect(),
            ));
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
        let rows = TextRows {
            columns: vec!["name".into(), "state".into()],
            rows: vec![
                vec![Some("pg".into()), Some("ready".into())],
                vec![Some("offline".into()), None],
            ],
        };
        assert_eq!(
            rows.render(),
            " name    | state\n---------+-------\n pg      | ready\n offline |\n(2 rows)\n"
        );
    }
}
