//! Collections on disk: one `qdrant-edge` shard per collection under
//! `<data_dir>/collections/<name>/`, loaded at start, flushed periodically and on close.
//!
//! Every method here blocks (the engine is synchronous); the gRPC layer calls them from
//! `spawn_blocking`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard};

use qdrant_edge::{EdgeConfig, EdgeShard, UpdateOperation};
use tonic::Status;

use crate::error::{bad_input, collection_not_found, engine, validation};

/// All collections of one server.
#[derive(Debug)]
pub(crate) struct Store {
    root: PathBuf,
    collections: RwLock<BTreeMap<String, Arc<Collection>>>,
}

/// One collection: its shard, and a writer lock that serialises updates and flushes (the
/// engine's own flush must not run while an update holds its write-ahead log).
#[derive(Debug)]
pub(crate) struct Collection {
    name: String,
    path: PathBuf,
    shard: RwLock<Option<EdgeShard>>,
    writer: Mutex<()>,
    dirty: AtomicBool,
    operations: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn lock<T>(lock: &Mutex<T>) -> MutexGuard<'_, T> {
    lock.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Checks a collection name the way Qdrant does: 1–255 characters, none of which a file
/// system or a URL path would choke on.
pub(crate) fn check_collection_name(name: &str) -> Result<(), Status> {
    const FORBIDDEN: &[char] = &['<', '>', ':', '"', '/', '\\', '|', '?', '*', '\0'];
    if name.is_empty() || name.chars().count() > 255 {
        return Err(validation(
            "collection_name: length must be between 1 and 255",
        ));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err(validation("collection_name: must not start with `.`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| FORBIDDEN.contains(c) || c.is_control())
    {
        return Err(validation(format!(
            "collection_name: collection name cannot contain \"{}\" char",
            c.escape_default()
        )));
    }
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the store under `data_dir` and loads every collection.
    /// A collection that fails to load is logged and left on disk untouched, not served.
    pub(crate) fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let root = data_dir.join("collections");
        std::fs::create_dir_all(&root)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", root.display()))?;
        let mut collections = BTreeMap::new();
        for entry in std::fs::read_dir(&root)? {
            let entry = entry?;
            let path = entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
                continue;
            };
            if !path.is_dir() || check_collection_name(&name).is_err() {
                continue;
            }
            match EdgeShard::load(&path, None) {
                Ok(shard) => {
                    let points = shard.info().points_count;
                    tracing::info!(collection = %name, points, "collection loaded");
                    collections.insert(name.clone(), Arc::new(Collection::new(name, path, shard)));
                }
                Err(e) => tracing::error!(
                    collection = %name,
                    path = %path.display(),
                    error = %e,
                    "collection failed to load; it is left on disk and not served"
                ),
            }
        }
        Ok(Self {
            root,
            collections: RwLock::new(collections),
        })
    }

    /// The collection called `name`, or Qdrant's `NOT_FOUND`.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<Collection>, Status> {
        read(&self.collections)
            .get(name)
            .cloned()
            .ok_or_else(|| collection_not_found(name))
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        read(&self.collections).contains_key(name)
    }

    pub(crate) fn names(&self) -> Vec<String> {
        read(&self.collections).keys().cloned().collect()
    }

    /// Creates a collection; `INVALID_ARGUMENT` if it exists already, as Qdrant answers.
    pub(crate) fn create(&self, name: &str, config: EdgeConfig) -> Result<(), Status> {
        check_collection_name(name)?;
        let mut collections = self
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if collections.contains_key(name) {
            return Err(bad_input(format!("Collection `{name}` already exists!")));
        }
        let path = self.root.join(name);
        if path.exists() {
            return Err(Status::failed_precondition(format!(
                "{} exists but holds no loadable collection (see the startup log); \
                 move it away to reuse the name `{name}`",
                path.display()
            )));
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| Status::internal(format!("cannot create {}: {e}", path.display())))?;
        match EdgeShard::new(&path, config) {
            Ok(shard) => {
                tracing::info!(collection = %name, "collection created");
                collections.insert(
                    name.to_owned(),
                    Arc::new(Collection::new(name.to_owned(), path, shard)),
                );
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&path);
                Err(engine(e))
            }
        }
    }

    /// Deletes a collection and its files. `false` when there was none (Qdrant answers
    /// `result: false` then, not an error).
    pub(crate) fn delete(&self, name: &str) -> Result<bool, Status> {
        let removed = self
            .collections
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(name);
        let Some(collection) = removed else {
            return Ok(false);
        };
        collection.close();
        std::fs::remove_dir_all(&collection.path).map_err(|e| {
            Status::internal(format!(
                "collection `{name}` is closed but {} could not be removed: {e}",
                collection.path.display()
            ))
        })?;
        tracing::info!(collection = %name, "collection deleted");
        Ok(true)
    }

    /// Flushes every collection written since its last flush.
    pub(crate) fn flush_all(&self) {
        let collections: Vec<_> = read(&self.collections).values().cloned().collect();
        for collection in collections {
            collection.flush();
        }
    }

    /// Flushes and closes every collection (on shutdown).
    pub(crate) fn close(&self) {
        let collections: Vec<_> = read(&self.collections).values().cloned().collect();
        for collection in collections {
            collection.close();
        }
    }
}

impl Collection {
    fn new(name: String, path: PathBuf, shard: EdgeShard) -> Self {
        Self {
            name,
            path,
            shard: RwLock::new(Some(shard)),
            writer: Mutex::new(()),
            dirty: AtomicBool::new(false),
            operations: AtomicU64::new(0),
        }
    }

    /// Runs a read on the shard (many at once).
    pub(crate) fn read<R>(
        &self,
        f: impl FnOnce(&EdgeShard) -> Result<R, Status>,
    ) -> Result<R, Status> {
        let guard = read(&self.shard);
        let shard = guard
            .as_ref()
            .ok_or_else(|| collection_not_found(&self.name))?;
        f(shard)
    }

    /// Applies one update; returns its operation number.
    pub(crate) fn update(&self, operation: UpdateOperation) -> Result<u64, Status> {
        let _writer = lock(&self.writer);
        let guard = read(&self.shard);
        let shard = guard
            .as_ref()
            .ok_or_else(|| collection_not_found(&self.name))?;
        self.dirty.store(true, Ordering::Release);
        shard.update(operation).map_err(engine)?;
        Ok(self.operations.fetch_add(1, Ordering::AcqRel))
    }

    /// Writes the write-ahead log and every changed segment to disk, if anything changed.
    pub(crate) fn flush(&self) {
        let _writer = lock(&self.writer);
        if !self.dirty.swap(false, Ordering::AcqRel) {
            return;
        }
        if let Some(shard) = read(&self.shard).as_ref() {
            shard.flush();
            tracing::debug!(collection = %self.name, "collection flushed");
        }
    }

    /// Flushes and drops the shard; later calls answer `NOT_FOUND`.
    fn close(&self) {
        let _writer = lock(&self.writer);
        let shard = self
            .shard
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(shard) = shard {
            shard.flush();
            drop(shard);
            tracing::info!(collection = %self.name, "collection closed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::check_collection_name;

    #[test]
    fn collection_names_follow_qdrant_rules() {
        for good in ["docs", "apex_chunks-v1", "Ünïcode", &"x".repeat(255)] {
            assert!(check_collection_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a/b",
            "a\\b",
            "..",
            ".hidden",
            "a*b",
            "tab\there",
            &"x".repeat(256),
        ] {
            let err = check_collection_name(bad).expect_err(bad);
            assert_eq!(err.code(), tonic::Code::InvalidArgument, "{bad}");
        }
    }
}
