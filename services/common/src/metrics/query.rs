//! A small client of Prometheus's instant-query API (`/api/v1/query`), for `apex top` and
//! the tests that run the dashboards' queries.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;

/// One series of an instant query: its labels and its value (NaN when not a number).
pub type Series = Vec<(BTreeMap<String, String>, f64)>;

/// Prometheus at `url` (for example `http://127.0.0.1:9090`).
#[derive(Debug, Clone)]
pub struct Prometheus {
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        })
    }

    /// The series an instant query gives, or why Prometheus could not answer it.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Series> {
        let body: Value = self
            .http
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", expr)])
            .send()
            .await
            .with_context(|| format!("cannot reach Prometheus at {}", self.url))?
            .json()
            .await
            .with_context(|| format!("Prometheus at {} did not answer JSON", self.url))?;
        if body["status"] != "success" {
            bail!(
                "Prometheus refused `{expr}`: {}: {}",
                body["errorType"],
                body["error"]
            );
        }
        Ok(body["data"]["result"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| {
                let labels = s["metric"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect())
    }

    /// A query that gives one number (0 when it gives none).
    pub async fn number(&self, expr: &str) -> anyhow::Result<f64> {
        Ok(self.query(expr).await?.first().map_or(0.0, |s| s.1))
    }
}
