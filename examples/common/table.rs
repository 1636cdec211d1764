//! Results tables, written as Markdown (to read) and CSV (to load).

use super::output::{write_file, AnyResult};
use std::fmt::Write as _;
use std::path::Path;

/// A results table, written as Markdown and CSV beside each other.
pub struct Table {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }
    pub fn push(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }
    pub fn markdown(&self) -> String {
        let mut s = format!("| {} |\n|", self.headers.join(" | "));
        for _ in &self.headers {
            s.push_str(" --- |");
        }
        s.push('\n');
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
    /// RFC 4180: a cell holding a comma or a quote ("818,787") is quoted.
    pub fn csv(&self) -> String {
        let line = |cells: &[String]| {
            let quoted: Vec<String> = cells
                .iter()
                .map(|c| {
                    if c.contains(',') || c.contains('"') {
                        format!("\"{}\"", c.replace('"', "\"\""))
                    } else {
                        c.clone()
                    }
                })
                .collect();
            quoted.join(",") + "\n"
        };
        let mut s = line(&self.headers);
        for r in &self.rows {
            s.push_str(&line(r));
        }
        s
    }
    /// Writes `stem.md` and `stem.csv` into `dir`.
    pub fn write(&self, dir: &Path, stem: &str) -> AnyResult<()> {
        write_file(&dir.join(format!("{stem}.md")), &self.markdown())?;
        write_file(&dir.join(format!("{stem}.csv")), &self.csv())
    }
}
