//! `apex trace`: a document's ingestion as a span tree with timings, read from the local
//! trace viewer's API, and the link that shows it in the viewer's UI.

use std::time::{Duration, Instant};

use anyhow::bail;
use apex_common::viewer::{SpanTree, Viewer};

/// What to show.
#[derive(Debug)]
pub struct TraceQuery {
    /// A document id (its ingestions' traces), or a 32-hex trace id.
    pub id: Option<String>,
    /// Without an id: the newest document ingested from this source.
    pub source: Option<String>,
    /// Every trace of the document, not only the newest.
    pub all: bool,
    /// How long to wait for the trace to reach the viewer (spans are exported in batches).
    pub wait: Duration,
}

fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The trace ids the query names, oldest first.
async fn trace_ids(viewer: &Viewer, q: &TraceQuery) -> anyhow::Result<Vec<String>> {
    match (&q.id, &q.source) {
        (Some(id), _) if is_trace_id(id) => Ok(vec![id.to_ascii_lowercase()]),
        (Some(id), _) => viewer.traces_of_document(id).await,
        (None, Some(source)) => viewer.traces_of_source(source).await,
        (None, None) => bail!("give a document id, a trace id, or --source"),
    }
}

/// The trace once the viewer has all of it: spans arrive in batches from several processes
/// and the viewer digests them behind the exporters, so this waits (until `give_up`) for
/// the span count to hold still over two looks and for the spans to hang from one root.
async fn settled(viewer: &Viewer, id: &str, give_up: Instant) -> anyhow::Result<SpanTree> {
    let mut tree = SpanTree::new(viewer.trace(id).await?);
    loop {
        if Instant::now() >= give_up {
            return Ok(tree);
        }
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let next = SpanTree::new(viewer.trace(id).await?);
        if next.spans.len() == tree.spans.len() && next.roots.len() == 1 {
            return Ok(next);
        }
        tree = next;
    }
}

/// Prints the trace tree(s); `Ok(false)` when there is none.
pub async fn run(base: &str, q: TraceQuery) -> anyhow::Result<bool> {
    let viewer = Viewer::new(base)?;
    let give_up = Instant::now() + q.wait;
    let mut ids = trace_ids(&viewer, &q).await?;
    while ids.is_empty() && Instant::now() < give_up {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ids = trace_ids(&viewer, &q).await?;
    }
    if ids.is_empty() {
        eprintln!(
            "no trace found in the viewer at {base} (is the stack's `traces` component up, and was the document ingested since?)"
        );
        return Ok(false);
    }
    if !q.all {
        ids = ids.split_off(ids.len() - 1);
    }
    for id in ids {
        let tree = settled(&viewer, &id, give_up).await?;
        let total = tree.span_of_time();
        println!(
            "trace {id}: {} spans, {:.1} ms from the first start to the last end",
            tree.spans.len(),
            total.as_secs_f64() * 1000.0
        );
        print!("{}", tree.render());
        println!("view it: {}", viewer.trace_link(&id));
        println!();
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_id_is_told_from_a_document_id() {
        assert!(is_trace_id("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(!is_trace_id("6f1c2b9e-3d4a-5b6c-8d7e-9f0a1b2c3d4e"));
        assert!(!is_trace_id("4bf92f3577b34da6a3ce929d0e0e473"));
    }
}
