//! The learning curves: named columns of numbers, written as CSV and kept in checkpoints as
//! JSON.

use super::output::{write_file, AnyResult};
use std::path::Path;

/// Named columns of numbers, one row per log point: the learning curves.
#[derive(Clone, Debug, Default)]
pub struct History {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<f64>>,
}

impl History {
    pub fn new(columns: &[&str]) -> Self {
        History {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Vec<f64>) {
        assert_eq!(row.len(), self.columns.len(), "History::push: row width");
        self.rows.push(row);
    }
    pub fn column(&self, name: &str) -> Vec<f64> {
        let i = self
            .columns
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("History: no column {name:?}"));
        self.rows.iter().map(|r| r[i]).collect()
    }
    /// `(x, y)` points of two columns, skipping rows where `y` is NaN (not measured then).
    pub fn points(&self, x: &str, y: &str) -> Vec<(f64, f64)> {
        self.column(x)
            .into_iter()
            .zip(self.column(y))
            .filter(|(_, v)| v.is_finite())
            .collect()
    }
    pub fn to_json(&self) -> String {
        serde_json::json!({ "columns": self.columns, "rows": self.rows }).to_string()
    }
    pub fn from_json(s: &str) -> Option<Self> {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        let columns = v["columns"]
            .as_array()?
            .iter()
            .map(|c| c.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let rows = v["rows"]
            .as_array()?
            .iter()
            .map(|r| {
                r.as_array()?
                    .iter()
                    .map(|x| Some(x.as_f64().unwrap_or(f64::NAN)))
                    .collect::<Option<Vec<f64>>>()
            })
            .collect::<Option<Vec<_>>>()?;
        Some(History { columns, rows })
    }
    pub fn write_csv(&self, path: &Path) -> AnyResult<()> {
        let mut s = self.columns.join(",");
        s.push('\n');
        for r in &self.rows {
            let cells: Vec<String> = r.iter().map(|v| format!("{v}")).collect();
            s.push_str(&cells.join(","));
            s.push('\n');
        }
        write_file(path, &s)
    }
}
