//! After a round: what each store holds of each document, read with the stores' own clients
//! (PostgreSQL, the graph, the vector store, Redis) through a writer library of its own, not
//! through the writer service, which may be the piece that was taken away.

use apex_common::stack::StackSettings;
use apex_proto::writer::v1::{Store, StoreView};
use apex_writer::WriterSettings;

use super::docs::Doc;

/// The verdict on one round's documents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub completed: usize,
    pub failed: usize,
    /// Never accepted, or accepted and never final.
    pub lost: usize,
    /// Stored at a version other than 1: written more than once.
    pub duplicated: usize,
    /// Completed, but the stores do not hold the same document.
    pub disagree: usize,
    /// One line per problem, for the report.
    pub problems: Vec<String>,
}

impl Verdict {
    pub fn clean(&self) -> bool {
        self.failed == 0 && self.lost == 0 && self.duplicated == 0 && self.disagree == 0
    }
}

/// The writer settings of the stack's own writer (the stores at the stack's ports, every
/// other setting at its default, as `apex up` starts it).
pub fn writer_settings(stack: &StackSettings) -> WriterSettings {
    let mut s = WriterSettings::default();
    s.postgres.url = stack.postgres_url();
    s.redis.url = stack.redis_url();
    s.graph.url = format!("redis://127.0.0.1:{}", stack.graph_port);
    s.vectors.url = format!("http://127.0.0.1:{}", stack.vectors_port);
    s.service.metrics_addr = String::new();
    s
}

fn view(stores: &[StoreView], store: Store) -> Option<&StoreView> {
    stores.iter().find(|v| v.store == store as i32)
}

/// Checks every document: final and completed, stored once, the same in every store.
pub async fn check(writer: &apex_writer::Writer, docs: &[Doc], not_accepted: &[String]) -> Verdict {
    let mut v = Verdict {
        lost: not_accepted.len(),
        problems: not_accepted.to_vec(),
        ..Verdict::default()
    };
    for d in docs {
        match d.status.as_str() {
            "completed" => v.completed += 1,
            "failed" => {
                v.failed += 1;
                v.problems
                    .push(format!("{} failed: {}", d.external_id, d.error));
                continue;
            }
            other => {
                v.lost += 1;
                v.problems.push(format!(
                    "{} never finished (status `{other}`)",
                    d.external_id
                ));
                continue;
            }
        }
        let r = match writer.inspect(&d.document_id).await {
            Ok(r) => r,
            Err(e) => {
                v.disagree += 1;
                v.problems
                    .push(format!("{}: the stores cannot be read: {e}", d.external_id));
                continue;
            }
        };
        if r.version != 1 {
            v.duplicated += 1;
            v.problems.push(format!(
                "{} is stored at version {}",
                d.external_id, r.version
            ));
        }
        let pg = view(&r.stores, Store::Postgres);
        let vectors = view(&r.stores, Store::Vectors);
        let counts_match = pg.is_some_and(|p| {
            u64::from(p.chunk_count) == d.chunk_count && u64::from(p.entity_count) == d.entity_count
        }) && vectors
            .is_some_and(|p| u64::from(p.vector_count) == d.vector_count);
        let everywhere = r.stores.iter().all(|s| s.present);
        if !(r.consistent && everywhere && counts_match) {
            v.disagree += 1;
            v.problems.push(format!(
                "{}: the stores disagree: {:?}",
                d.external_id, r.stores
            ));
        }
    }
    v
}
