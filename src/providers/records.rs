//! Splitting the bytes of one export file into records: JSON lines, CSV rows (RFC 4180, quoted
//! fields may span lines) and paged JSON (`data[].results[]` of the admin APIs), plus gzip.
//!
//! Owns record boundaries and their positions (line numbers, bucket/result ordinals); it must not
//! know what any field means.

use std::io::Read;

use serde_json::{Map, Value};

/// How a format lays its records out in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// One JSON object per line.
    JsonLines,
    /// CSV with a header row; header names are matched case-insensitively.
    Csv,
    /// One JSON page `{data: [{<bucket fields>, results: [...]}]}`; each result is a record and
    /// carries its bucket's fields (`start_time`, `starting_at`, ...).
    Pages,
}

/// One record cut out of a file, parsed as JSON (CSV rows become objects of strings).
#[derive(Debug)]
pub struct RawRecord {
    /// 1-based line where the record starts, for line-oriented layouts.
    pub line: Option<u64>,
    /// Human position: `line 12` or `bucket 2, result 3`.
    pub location: String,
    /// The record, or why it could not be read.
    pub value: Result<Value, String>,
}

/// A problem with the file as a whole (not JSON, truncated page, missing header).
#[derive(Debug, Clone)]
pub struct FileProblem {
    /// 1-based line, if known.
    pub line: Option<u64>,
    /// Human position.
    pub location: String,
    /// What is wrong.
    pub message: String,
}

impl FileProblem {
    fn at_line(line: u64, message: impl Into<String>) -> Self {
        Self {
            line: Some(line),
            location: format!("line {line}"),
            message: message.into(),
        }
    }
}

/// Decompress gzip data (by name or by magic bytes); other data is returned as is.
pub fn decompress(name: &str, bytes: &[u8]) -> Result<Vec<u8>, FileProblem> {
    if name.ends_with(".gz") || bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| FileProblem {
                line: None,
                location: "gzip stream".into(),
                message: format!("cannot decompress: {e}"),
            })?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

/// Cut `bytes` into records according to `layout`.
pub fn split(layout: Layout, bytes: &[u8]) -> Result<Vec<RawRecord>, FileProblem> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = 1 + bytes[..e.valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count();
        FileProblem::at_line(line as u64, format!("not UTF-8 text: {e}"))
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    match layout {
        Layout::JsonLines => Ok(json_lines(text)),
        Layout::Csv => csv(text),
        Layout::Pages => pages(text),
    }
}

fn json_lines(text: &str) -> Vec<RawRecord> {
    text.split('\n')
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line = i as u64 + 1;
            let value = match serde_json::from_str::<Value>(l.trim_end_matches('\r')) {
                Ok(v @ Value::Object(_)) => Ok(v),
                Ok(_) => Err("expected a JSON object".to_string()),
                Err(e) => Err(format!("invalid JSON: {e}")),
            };
            RawRecord {
                line: Some(line),
                location: format!("line {line}"),
                value,
            }
        })
        .collect()
}

fn pages(text: &str) -> Result<Vec<RawRecord>, FileProblem> {
    let page: Value = serde_json::from_str(text).map_err(|e| {
        FileProblem::at_line(
            e.line() as u64,
            format!("invalid JSON page (truncated?): {e}"),
        )
    })?;
    let Some(buckets) = page.get("data").and_then(Value::as_array) else {
        return Err(FileProblem::at_line(
            1,
            "expected a page object with a `data` array",
        ));
    };
    let mut out = Vec::new();
    for (b, bucket) in buckets.iter().enumerate() {
        let location = |r: Option<usize>| match r {
            Some(r) => format!("bucket {}, result {}", b + 1, r + 1),
            None => format!("bucket {}", b + 1),
        };
        let Some(results) = bucket.get("results").and_then(Value::as_array) else {
            out.push(RawRecord {
                line: None,
                location: location(None),
                value: Err("bucket without a `results` array".into()),
            });
            continue;
        };
        for (r, result) in results.iter().enumerate() {
            let value = match (result, bucket) {
                (Value::Object(res), Value::Object(bkt)) => {
                    let mut merged: Map<String, Value> = res.clone();
                    for (k, v) in bkt {
                        if k != "results" && k != "object" && !merged.contains_key(k) {
                            merged.insert(k.clone(), v.clone());
                        }
                    }
                    Ok(Value::Object(merged))
                }
                _ => Err("expected a result object".to_string()),
            };
            out.push(RawRecord {
                line: None,
                location: location(Some(r)),
                value,
            });
        }
    }
    Ok(out)
}

/// Parse RFC 4180 CSV into rows of fields, each with the line it starts on.
fn csv_rows(text: &str) -> Vec<(u64, Result<Vec<String>, String>)> {
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line: u64 = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut at_field_start = true;
        let mut error = None;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    error = Some("unterminated quoted field (truncated file?)".to_string());
                }
                break;
            };
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    '\n' => {
                        line += 1;
                        field.push(c);
                    }
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' if at_field_start => {
                    quoted = true;
                    at_field_start = false;
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    at_field_start = true;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ => {
                    field.push(c);
                    at_field_start = false;
                }
            }
        }
        fields.push(field);
        let blank = fields.len() == 1 && fields[0].is_empty() && error.is_none();
        if !blank {
            rows.push((start, error.map_or(Ok(fields), Err)));
        }
    }
    rows
}

fn csv(text: &str) -> Result<Vec<RawRecord>, FileProblem> {
    let mut rows = csv_rows(text).into_iter();
    let header = match rows.next() {
        Some((_, Ok(h))) => h
            .into_iter()
            .map(|h| h.trim().to_ascii_lowercase())
            .collect::<Vec<_>>(),
        Some((line, Err(e))) => return Err(FileProblem::at_line(line, e)),
        None => return Err(FileProblem::at_line(1, "empty file: no CSV header")),
    };
    Ok(rows
        .map(|(line, fields)| {
            let value = fields.and_then(|fields| {
                if fields.len() != header.len() {
                    return Err(format!(
                        "expected {} fields, found {} (truncated or malformed row?)",
                        header.len(),
                        fields.len()
                    ));
                }
                let map: Map<String, Value> = header
                    .iter()
                    .cloned()
                    .zip(fields.into_iter().map(Value::String))
                    .collect();
                Ok(Value::Object(map))
            });
            RawRecord {
                line: Some(line),
                location: format!("line {line}"),
                value,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_span_lines_and_escape_quotes() {
        let recs = split(Layout::Csv, b"A,b\n\"x,\"\"1\"\"\ny\",2\n3,4\n").expect("csv");
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].line, Some(2));
        let v = recs[0].value.as_ref().expect("row");
        assert_eq!(v["a"], "x,\"1\"\ny");
        assert_eq!(recs[1].line, Some(4));
    }

    #[test]
    fn truncated_csv_row_is_a_record_error() {
        let recs = split(Layout::Csv, b"a,b\n1,2\n3").expect("csv");
        assert!(recs[1].value.is_err());
        let recs = split(Layout::Csv, b"a,b\n1,\"2").expect("csv");
        assert!(
            recs[0]
                .value
                .as_ref()
                .is_err_and(|e| e.contains("unterminated"))
        );
    }

    #[test]
    fn truncated_page_names_the_line() {
        let err = split(Layout::Pages, b"{\"data\": [\n{\"results\": [").expect_err("truncated");
        assert_eq!(err.line, Some(2));
    }

    #[test]
    fn gzip_is_transparent() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b"{\"a\":1}\n").expect("write");
        let gz = enc.finish().expect("gzip");
        let plain = decompress("x.jsonl.gz", &gz).expect("gunzip");
        assert_eq!(plain, b"{\"a\":1}\n");
    }
}
