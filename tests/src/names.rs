//! Names no other test uses, so tests share one stack and run in parallel without seeing each
//! other's task queues, graphs, collections, Redis keys or sources.

use uuid::Uuid;

/// One test's names, all carrying the same random tag (handy when reading logs).
#[derive(Debug, Clone)]
pub struct Names {
    tag: String,
}

impl Default for Names {
    fn default() -> Self {
        Self::new()
    }
}

impl Names {
    pub fn new() -> Self {
        Self {
            tag: Uuid::new_v4().simple().to_string()[..12].to_owned(),
        }
    }

    /// The random tag shared by every name below.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// A Temporal task queue.
    pub fn queue(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.tag)
    }

    /// A FalkorDB graph.
    pub fn graph(&self) -> String {
        format!("apex_test_{}", self.tag)
    }

    /// A vector collection prefix (collections are `<prefix>_<model>`).
    pub fn collection_prefix(&self) -> String {
        format!("t{}", self.tag)
    }

    /// A Redis key.
    pub fn key(&self, prefix: &str) -> String {
        format!("{prefix}:{}", self.tag)
    }

    /// A document source (the `Source` search attribute and the rows' source column).
    pub fn source(&self, prefix: &str) -> String {
        format!("{prefix}-{}", self.tag)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_sandboxes_never_share_a_name_and_one_sandbox_names_consistently() {
        let (a, b) = (Names::new(), Names::new());
        assert_ne!(a.queue("q"), b.queue("q"));
        assert_ne!(a.graph(), b.graph());
        assert_ne!(a.collection_prefix(), b.collection_prefix());
        assert_eq!(a.queue("q"), a.queue("q"));
        assert!(a.key("apex:test").starts_with("apex:test:"));
        assert!(a.graph().ends_with(a.tag()));
    }
}
