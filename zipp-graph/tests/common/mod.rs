//! Edge files for the tests: a temporary folder, and one table of rows written as JSONL,
//! CSV or Parquet.
#![allow(dead_code)] // each test binary uses its own part

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parquet::basic::{LogicalType, Repetition, Type as PhysicalType};
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, Int64Type};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// (user, community, count, text)
pub type Row<S> = (S, S, Option<f64>, Option<S>);

/// A fresh folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let d = std::env::temp_dir().join(format!("zipp-graph-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        TempDir(d)
    }

    pub fn write(&self, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A blank line after the third row (blank lines are skipped).
pub fn jsonl<S: AsRef<str>>(rows: &[Row<S>]) -> String {
    let mut out = String::new();
    for (i, (u, c, n, t)) in rows.iter().enumerate() {
        let mut obj = serde_json::json!({"user": u.as_ref(), "community": c.as_ref()});
        if let Some(n) = n {
            obj["count"] = serde_json::json!(n);
        }
        if let Some(t) = t {
            obj["text"] = serde_json::json!(t.as_ref());
        }
        out.push_str(&obj.to_string());
        out.push('\n');
        if i == 2 {
            out.push_str("   \n");
        }
    }
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Columns in another order than the table's, CRLF line ends.
pub fn csv<S: AsRef<str>>(rows: &[Row<S>]) -> String {
    let mut out = String::from("text,community,user,count\r\n");
    for (u, c, n, t) in rows {
        let n = n.map(|n| n.to_string()).unwrap_or_default();
        let t = t.as_ref().map_or("", AsRef::as_ref);
        out.push_str(&format!("{},{},{},{n}\r\n", csv_field(t), csv_field(c.as_ref()), csv_field(u.as_ref())));
    }
    out
}

/// A parquet column to write.
pub enum Col {
    Str(Vec<Option<Vec<u8>>>),
    Int(Vec<Option<i64>>),
    Float(Vec<Option<f64>>),
}

pub fn strs<S: AsRef<str>>(v: impl IntoIterator<Item = Option<S>>) -> Col {
    Col::Str(v.into_iter().map(|s| s.map(|s| s.as_ref().as_bytes().to_vec())).collect())
}

/// Writes a flat parquet file of optional columns, in row groups of `per_group` rows.
pub fn write_parquet(path: &Path, columns: &[(&str, Col)], per_group: usize) {
    let fields = columns
        .iter()
        .map(|(name, col)| {
            let builder = match col {
                Col::Str(_) => Type::primitive_type_builder(name, PhysicalType::BYTE_ARRAY)
                    .with_logical_type(Some(LogicalType::String)),
                Col::Int(_) => Type::primitive_type_builder(name, PhysicalType::INT64),
                Col::Float(_) => Type::primitive_type_builder(name, PhysicalType::DOUBLE),
            };
            Arc::new(builder.with_repetition(Repetition::OPTIONAL).build().unwrap())
        })
        .collect();
    let schema = Arc::new(Type::group_type_builder("schema").with_fields(fields).build().unwrap());
    let rows = match &columns[0].1 {
        Col::Str(v) => v.len(),
        Col::Int(v) => v.len(),
        Col::Float(v) => v.len(),
    };
    let props = Arc::new(WriterProperties::builder().build());
    let mut writer = SerializedFileWriter::new(File::create(path).unwrap(), schema, props).unwrap();
    let mut start = 0;
    while start < rows {
        let end = (start + per_group).min(rows);
        let mut group = writer.next_row_group().unwrap();
        let mut cols = columns.iter();
        while let Some(mut w) = group.next_column().unwrap() {
            fn defs<T>(v: &[Option<T>]) -> Vec<i16> {
                v.iter().map(|x| i16::from(x.is_some())).collect()
            }
            match &cols.next().unwrap().1 {
                Col::Str(v) => {
                    let v = &v[start..end];
                    let values: Vec<ByteArray> = v.iter().flatten().map(|b| b.clone().into()).collect();
                    w.typed::<ByteArrayType>().write_batch(&values, Some(&defs(v)), None).unwrap();
                }
                Col::Int(v) => {
                    let v = &v[start..end];
                    let values: Vec<i64> = v.iter().flatten().copied().collect();
                    w.typed::<Int64Type>().write_batch(&values, Some(&defs(v)), None).unwrap();
                }
                Col::Float(v) => {
                    let v = &v[start..end];
                    let values: Vec<f64> = v.iter().flatten().copied().collect();
                    w.typed::<DoubleType>().write_batch(&values, Some(&defs(v)), None).unwrap();
                }
            }
            w.close().unwrap();
        }
        group.close().unwrap();
        start = end;
    }
    writer.close().unwrap();
}

pub fn parquet_table<S: AsRef<str>>(rows: &[Row<S>]) -> Vec<(&'static str, Col)> {
    vec![
        ("user", strs(rows.iter().map(|r| Some(&r.0)))),
        ("community", strs(rows.iter().map(|r| Some(&r.1)))),
        ("count", Col::Float(rows.iter().map(|r| r.2).collect())),
        ("text", strs(rows.iter().map(|r| r.3.as_ref()))),
    ]
}
