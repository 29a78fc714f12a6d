//! The local trace viewer's REST API (Arize Phoenix): the traces that touched a document,
//! the spans of one trace, and the span tree they make, for `apex trace` and the tests.
//!
//! Phoenix files spans under the project named by the `openinference.project.name`
//! resource attribute ([`crate::telemetry::TRACE_PROJECT`]) and answers
//! `GET /v1/projects/<project>/spans` filtered by `trace_id` or by `attribute=key:value`
//! (the value read as JSON), a page of at most 1000 at a time with a `next_cursor`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::Value;

use crate::telemetry::TRACE_PROJECT;

/// One span as the viewer returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct ViewerSpan {
    pub name: String,
    pub context: SpanContext,
    #[serde(default)]
    pub parent_id: Option<String>,
    pub start_time: String,
    pub end_time: String,
    #[serde(default)]
    pub status_code: String,
    #[serde(default)]
    pub attributes: BTreeMap<String, Value>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SpanContext {
    pub trace_id: String,
    pub span_id: String,
}

#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<ViewerSpan>,
    next_cursor: Option<String>,
}

impl ViewerSpan {
    /// An attribute as text (strings as they are, numbers and booleans printed).
    pub fn attr(&self, key: &str) -> Option<String> {
        match self.attributes.get(key)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// The process that made it (the `service.name` span attribute).
    pub fn service(&self) -> String {
        self.attr("service.name").unwrap_or_default()
    }

    /// Start and end in microseconds since the epoch.
    pub fn micros(&self) -> Option<(i64, i64)> {
        Some((iso_micros(&self.start_time)?, iso_micros(&self.end_time)?))
    }

    pub fn duration(&self) -> Duration {
        self.micros()
            .map(|(s, e)| Duration::from_micros(u64::try_from(e - s).unwrap_or(0)))
            .unwrap_or_default()
    }

    pub fn is_error(&self) -> bool {
        self.status_code.eq_ignore_ascii_case("ERROR")
    }
}

/// A client of the viewer at `base` (for example `http://127.0.0.1:6006`).
#[derive(Debug, Clone)]
pub struct Viewer {
    base: String,
    http: reqwest::Client,
}

impl Viewer {
    pub fn new(base: &str) -> anyhow::Result<Self> {
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
        })
    }

    /// The page that shows one trace in the viewer's UI.
    pub fn trace_link(&self, trace_id: &str) -> String {
        format!("{}/redirects/traces/{trace_id}", self.base)
    }

    /// Every span matching `filter` (query pairs), all pages.
    async fn spans(&self, filter: &[(&str, String)]) -> anyhow::Result<Vec<ViewerSpan>> {
        let url = format!("{}/v1/projects/{TRACE_PROJECT}/spans", self.base);
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut query: Vec<(&str, String)> = filter.to_vec();
            query.push(("limit", "1000".to_owned()));
            if let Some(c) = &cursor {
                query.push(("cursor", c.clone()));
            }
            let response = self
                .http
                .get(&url)
                .query(&query)
                .send()
                .await
                .with_context(|| format!("cannot reach the trace viewer at {}", self.base))?;
            let status = response.status();
            if status == reqwest::StatusCode::NOT_FOUND {
                // No project yet: nothing has been exported.
                return Ok(out);
            }
            let body = response.text().await?;
            if !status.is_success() {
                bail!("the trace viewer answered {status}: {body}");
            }
            let page: Page = serde_json::from_str(&body)
                .with_context(|| format!("unexpected answer from the trace viewer: {body}"))?;
            out.extend(page.data);
            match page.next_cursor {
                Some(c) if !c.is_empty() => cursor = Some(c),
                _ => return Ok(out),
            }
        }
    }

    /// The spans of one trace.
    pub async fn trace(&self, trace_id: &str) -> anyhow::Result<Vec<ViewerSpan>> {
        self.spans(&[("trace_id", trace_id.to_owned())]).await
    }

    /// The traces with a span about `document_id` (`apex.document_id`), oldest first.
    pub async fn traces_of_document(&self, document_id: &str) -> anyhow::Result<Vec<String>> {
        self.traces_with("apex.document_id", document_id).await
    }

    /// The traces with a span from `source` (`apex.source`), oldest first; those that
    /// wrote a document (a `write` stage) when there are any, so the newest is a whole
    /// ingestion rather than one that ended `unchanged` early.
    pub async fn traces_of_source(&self, source: &str) -> anyhow::Result<Vec<String>> {
        let value = serde_json::to_string(source)?;
        let writes = self
            .spans(&[
                ("attribute", format!("apex.source:{value}")),
                ("name", "write".to_owned()),
            ])
            .await?;
        if writes.is_empty() {
            return self.traces_with("apex.source", source).await;
        }
        Ok(oldest_first(&writes))
    }

    /// The spans whose attribute `key` is the string `value`.
    pub async fn spans_with(&self, key: &str, value: &str) -> anyhow::Result<Vec<ViewerSpan>> {
        let value = serde_json::to_string(value)?;
        self.spans(&[("attribute", format!("{key}:{value}"))]).await
    }

    async fn traces_with(&self, key: &str, value: &str) -> anyhow::Result<Vec<String>> {
        Ok(oldest_first(&self.spans_with(key, value).await?))
    }
}

/// The trace ids of `spans`, by their first span's start, oldest first.
fn oldest_first(spans: &[ViewerSpan]) -> Vec<String> {
    let mut first: BTreeMap<String, i64> = BTreeMap::new();
    for s in spans {
        let start = iso_micros(&s.start_time).unwrap_or(0);
        let at = first.entry(s.context.trace_id.clone()).or_insert(start);
        *at = (*at).min(start);
    }
    let mut ids: Vec<(i64, String)> = first.into_iter().map(|(t, s)| (s, t)).collect();
    ids.sort();
    ids.into_iter().map(|(_, t)| t).collect()
}

/// Spans arranged by parentage: roots (no parent, or a parent that was not exported) and
/// each span's children in start order.
#[derive(Debug)]
pub struct SpanTree {
    pub spans: Vec<ViewerSpan>,
    pub roots: Vec<usize>,
    pub children: BTreeMap<usize, Vec<usize>>,
}

impl SpanTree {
    pub fn new(mut spans: Vec<ViewerSpan>) -> Self {
        spans.sort_by_key(|s| iso_micros(&s.start_time).unwrap_or(0));
        let index: BTreeMap<&str, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.context.span_id.as_str(), i))
            .collect();
        let mut roots = Vec::new();
        let mut children: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for (i, s) in spans.iter().enumerate() {
            match s.parent_id.as_deref().and_then(|p| index.get(p)) {
                Some(&parent) => children.entry(parent).or_default().push(i),
                None => roots.push(i),
            }
        }
        Self {
            spans,
            roots,
            children,
        }
    }

    /// The spans named `name`.
    pub fn named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = usize> + 'a {
        (0..self.spans.len()).filter(move |i| self.spans[*i].name == name)
    }

    pub fn parent_of(&self, i: usize) -> Option<usize> {
        self.children
            .iter()
            .find(|(_, c)| c.contains(&i))
            .map(|(p, _)| *p)
    }

    /// The distinct trace ids (one for a well-formed tree).
    pub fn trace_ids(&self) -> BTreeSet<&str> {
        self.spans
            .iter()
            .map(|s| s.context.trace_id.as_str())
            .collect()
    }

    /// From the first start to the last end.
    pub fn span_of_time(&self) -> Duration {
        let times: Vec<(i64, i64)> = self.spans.iter().filter_map(ViewerSpan::micros).collect();
        let first = times.iter().map(|t| t.0).min().unwrap_or(0);
        let last = times.iter().map(|t| t.1).max().unwrap_or(0);
        Duration::from_micros(u64::try_from(last - first).unwrap_or(0))
    }

    /// The tree as indented lines: name, duration, service and the telling attributes.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let origin = self
            .spans
            .iter()
            .filter_map(|s| iso_micros(&s.start_time))
            .min()
            .unwrap_or(0);
        for &r in &self.roots {
            self.render_one(r, 0, origin, &mut out);
        }
        out
    }

    fn render_one(&self, i: usize, depth: usize, origin: i64, out: &mut String) {
        let s = &self.spans[i];
        let offset = iso_micros(&s.start_time).map_or(0, |t| t - origin);
        let mut notes: Vec<String> = Vec::new();
        for key in [
            "apex.document_id",
            "apex.version",
            "db.system.name",
            "rpc.grpc.status_code",
            "http.response.status_code",
            "error.type",
            "apex.batch.texts",
        ] {
            if let Some(v) = s.attr(key)
                && (depth == 0 || key != "apex.document_id")
            {
                notes.push(format!("{key}={v}"));
            }
        }
        if s.is_error() {
            notes.push("ERROR".to_owned());
        }
        let label = format!("{}{}", "  ".repeat(depth), s.name);
        out.push_str(&format!(
            "{label:<60} {:>9.1} ms  +{:>8.1} ms  {:<14} {}\n",
            s.duration().as_secs_f64() * 1000.0,
            offset as f64 / 1000.0,
            s.service(),
            notes.join(" ")
        ));
        for &c in self.children.get(&i).map(Vec::as_slice).unwrap_or_default() {
            self.render_one(c, depth + 1, origin, out);
        }
    }
}

/// Microseconds since the epoch of an ISO 8601 time such as `2026-12-02T07:50:01.123456+00:00`
/// or `…Z` (the viewer's form); `None` when it is not one.
pub fn iso_micros(text: &str) -> Option<i64> {
    let (date, rest) = text.split_once('T')?;
    let mut d = date.splitn(3, '-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix('Z') {
        (c, 0)
    } else if let Some(at) = rest.rfind(['+', '-']) {
        let (c, z) = rest.split_at(at);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (h, mi) = z[1..].split_once(':').unwrap_or((&z[1..], "0"));
        (
            c,
            sign * (h.parse::<i64>().ok()? * 3600 + mi.parse::<i64>().ok()? * 60),
        )
    } else {
        (rest, 0)
    };
    let (hms, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let mut t = hms.splitn(3, ':');
    let (h, mi, s): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    let digits: String = fraction.chars().take(6).collect();
    let micros = if digits.is_empty() {
        0
    } else {
        digits.parse::<i64>().ok()? * 10_i64.pow(6 - digits.len() as u32)
    };
    // Days from the civil date (proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + s - offset_secs) * 1_000_000) + micros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_times_become_epoch_microseconds() {
        assert_eq!(iso_micros("1970-01-01T00:00:00+00:00"), Some(0));
        assert_eq!(iso_micros("1970-01-01T00:00:01.5Z"), Some(1_500_000));
        // 2026-12-02T07:50:01.123456Z, checked with `date -d … +%s`: 1796197801.
        assert_eq!(
            iso_micros("2026-12-02T07:50:01.123456+00:00"),
            Some(1_796_197_801_123_456)
        );
        assert_eq!(
            iso_micros("2026-12-02T09:50:01.123456+02:00"),
            Some(1_796_197_801_123_456)
        );
        assert_eq!(iso_micros("yesterday"), None);
        assert_eq!(iso_micros("2026-12-02Tnoon"), None);
    }

    fn span(id: &str, parent: Option<&str>, name: &str, start: &str) -> ViewerSpan {
        ViewerSpan {
            name: name.to_owned(),
            context: SpanContext {
                trace_id: "t1".to_owned(),
                span_id: id.to_owned(),
            },
            parent_id: parent.map(str::to_owned),
            start_time: format!("2026-12-02T07:50:0{start}Z"),
            end_time: "2026-12-02T07:50:09Z".to_owned(),
            status_code: "OK".to_owned(),
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn spans_arrange_by_parent_and_an_unexported_parent_makes_a_root() {
        let tree = SpanTree::new(vec![
            span("c", Some("a"), "child-late", "3"),
            span("a", Some("not-exported"), "root", "1"),
            span("b", Some("a"), "child-early", "2"),
            span("d", Some("b"), "grandchild", "4"),
        ]);
        let names = |v: &[usize]| {
            v.iter()
                .map(|i| tree.spans[*i].name.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&tree.roots), ["root"]);
        let root = tree.roots[0];
        assert_eq!(names(&tree.children[&root]), ["child-early", "child-late"]);
        let early = tree.named("child-early").next().expect("there");
        assert_eq!(tree.parent_of(early), Some(root));
        let rendered = tree.render();
        let lines: Vec<&str> = rendered.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("root "));
        assert!(lines[1].starts_with("  child-early"));
        assert!(lines[2].starts_with("    grandchild"));
        assert!(lines[3].starts_with("  child-late"));
    }
}
