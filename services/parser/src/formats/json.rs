//! JSON: every scalar as a `path: value` line (object keys sorted), nesting bounded.

use serde_json::Value;

use crate::model::{Extracted, ParseError, TextBuilder};

pub(crate) fn parse(source: &str, max_depth: usize) -> Result<Extracted, ParseError> {
    // serde_json refuses nesting beyond 128 levels itself; the configured limit may be lower.
    let value: Value = serde_json::from_str(source).map_err(|e| {
        let reason = e.to_string();
        if reason.starts_with("recursion limit exceeded") {
            let limit = max_depth.min(128);
            ParseError::invalid(
                "json",
                format!("nested deeper than {limit} levels: {reason}"),
            )
        } else {
            ParseError::invalid("json", format!("not valid JSON: {reason}"))
        }
    })?;
    let mut lines = Vec::new();
    let mut stack: Vec<(String, &Value, usize)> = vec![(String::new(), &value, 0)];
    while let Some((path, v, depth)) = stack.pop() {
        if depth > max_depth {
            return Err(ParseError::invalid(
                "json",
                format!("nesting deeper than {max_depth} levels"),
            ));
        }
        match v {
            Value::Object(map) => {
                // Keys sorted explicitly: serde_json's map order depends on whether some
                // other crate in the build enables `preserve_order`.
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                for (k, child) in entries.into_iter().rev() {
                    let p = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    stack.push((p, child, depth + 1));
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate().rev() {
                    stack.push((format!("{path}[{i}]"), child, depth + 1));
                }
            }
            Value::Null => {}
            Value::String(s) => lines.push(if path.is_empty() {
                s.clone()
            } else {
                format!("{path}: {s}")
            }),
            other => lines.push(if path.is_empty() {
                other.to_string()
            } else {
                format!("{path}: {other}")
            }),
        }
    }
    let mut out = Extracted::default();
    if let Some(title) = ["title", "name", "subject"]
        .iter()
        .find_map(|k| value.get(k).and_then(Value::as_str))
    {
        out.metadata.insert("title".to_owned(), title.to_owned());
    }
    let mut b = TextBuilder::new();
    b.push_block(&lines.join("\n"));
    out.text = b.finish();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_become_path_lines_with_keys_sorted() {
        let out = parse(
            r#"{"title":"Order 7","lines":[{"sku":"A1","qty":2}],"paid":true,"note":null}"#,
            64,
        )
        .expect("parses");
        assert_eq!(
            out.text,
            "lines[0].qty: 2\nlines[0].sku: A1\npaid: true\ntitle: Order 7"
        );
        assert_eq!(out.metadata["title"], "Order 7");
    }

    #[test]
    fn depth_and_syntax_errors_are_refused() {
        let deep = format!("{}1{}", "[".repeat(100), "]".repeat(100));
        assert!(
            parse(&deep, 64)
                .expect_err("deep")
                .to_string()
                .contains("deeper than 64")
        );
        let e = parse("{\"a\": ", 64).expect_err("truncated");
        assert!(e.to_string().contains("not valid JSON"), "{e}");
    }
}
