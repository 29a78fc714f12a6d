//! The claim-check blob store: content-addressed artifacts over `object_store`.
//!
//! Keys are `<kind>/<sha256 hex>`, so storing the same bytes twice is a no-op and any
//! activity can be retried without creating duplicates. `file:///abs/dir` or a plain path
//! selects a local directory (the default), `s3://bucket/prefix` S3 (credentials from the
//! standard `AWS_*` environment), and `memory://` an in-process store for tests.

use std::sync::Arc;

use apex_proto::common::v1::BlobRef;
use bytes::Bytes;
use object_store::{ObjectStore, PutPayload, memory::InMemory, path::Path};
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

/// A content-addressed blob store.
#[derive(Debug, Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
}

impl BlobStore {
    /// Opens the store named by `url` (see the module docs for the forms).
    pub fn open(url: &str) -> Result<Self, ServiceError> {
        let bad = |e: String| ServiceError::invalid_field("blob_url", e);
        if url == "memory://" {
            return Ok(Self {
                store: Arc::new(InMemory::new()),
                prefix: Path::default(),
            });
        }
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            let store = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| bad(e.to_string()))?;
            return Ok(Self {
                store: Arc::new(store),
                prefix: Path::from(prefix),
            });
        }
        let dir = url.strip_prefix("file://").unwrap_or(url);
        if dir.is_empty() {
            return Err(bad("empty blob store location".to_owned()));
        }
        std::fs::create_dir_all(dir).map_err(|e| bad(format!("cannot create {dir}: {e}")))?;
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            store: Arc::new(store),
            prefix: Path::default(),
        })
    }

    fn path(&self, key: &str) -> Path {
        self.prefix.parts().chain(Path::from(key).parts()).collect()
    }

    /// Stores `bytes` under `<kind>/<sha256>` and returns the claim check.
    pub async fn put(
        &self,
        kind: &str,
        content_type: &str,
        bytes: Bytes,
    ) -> Result<BlobRef, ServiceError> {
        if kind.is_empty() || kind.contains('/') {
            return Err(ServiceError::invalid_field(
                "kind",
                format!("bad blob kind `{kind}`"),
            ));
        }
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let key = format!("{kind}/{sha256}");
        let size_bytes = bytes.len() as u64;
        self.store
            .put(&self.path(&key), PutPayload::from_bytes(bytes))
            .await
            .map_err(store_error)?;
        Ok(BlobRef {
            key,
            sha256,
            size_bytes,
            content_type: content_type.to_owned(),
        })
    }

    /// Reads the bytes behind `key`; `NotFound` when absent.
    pub async fn get(&self, key: &str) -> Result<Bytes, ServiceError> {
        validate_key(key)?;
        let result = self.store.get(&self.path(key)).await.map_err(store_error)?;
        result.bytes().await.map_err(store_error)
    }

    /// Reads a blob and checks that its bytes still hash to the key's digest.
    pub async fn get_verified(&self, blob: &BlobRef) -> Result<Bytes, ServiceError> {
        let bytes = self.get(&blob.key).await?;
        let actual = hex::encode(Sha256::digest(&bytes));
        let expected = blob.key.rsplit('/').next().unwrap_or_default();
        if actual != expected {
            return Err(ServiceError::FailedPrecondition(format!(
                "blob {} is corrupt: content hashes to {actual}",
                blob.key
            )));
        }
        Ok(bytes)
    }

    /// Deletes a blob; deleting an absent blob succeeds.
    /// Reads a parsed-document artifact (the claim-check input of the extractor and the
    /// embedder): `INVALID_ARGUMENT` when none is given or the bytes are not one,
    /// `NOT_FOUND` when it is not stored.
    pub async fn get_parsed(
        &self,
        parsed: Option<&BlobRef>,
    ) -> Result<apex_proto::parser::v1::ParsedDocument, ServiceError> {
        use prost::Message as _;
        let parsed = parsed.ok_or_else(|| {
            ServiceError::invalid_field("parsed", "a parsed-document artifact is required")
        })?;
        let bytes = self.get_verified(parsed).await?;
        apex_proto::parser::v1::ParsedDocument::decode(bytes).map_err(|e| {
            ServiceError::invalid_field(
                "parsed",
                format!("{} is not a parsed-document artifact: {e}", parsed.key),
            )
        })
    }

    pub async fn delete(&self, key: &str) -> Result<(), ServiceError> {
        validate_key(key)?;
        match self.store.delete(&self.path(key)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e)),
        }
    }
}

fn validate_key(key: &str) -> Result<(), ServiceError> {
    let ok = key.split_once('/').is_some_and(|(kind, digest)| {
        !kind.is_empty()
            && digest.len() == 64
            && digest
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    });
    if ok {
        Ok(())
    } else {
        Err(ServiceError::invalid_field(
            "key",
            format!("`{key}` is not a blob key of the form <kind>/<sha256 hex>"),
        ))
    }
}

fn store_error(e: object_store::Error) -> ServiceError {
    match e {
        object_store::Error::NotFound { path, .. } => {
            ServiceError::NotFound(format!("blob {path} does not exist"))
        }
        other => ServiceError::Unavailable(format!("blob store: {other}")),
    }
}

/// The chunks of a parsed document and of its parts (attachments), recursively, in
/// document order.
pub fn all_chunks(
    doc: apex_proto::parser::v1::ParsedDocument,
) -> Vec<apex_proto::common::v1::Chunk> {
    fn walk(
        doc: apex_proto::parser::v1::ParsedDocument,
        out: &mut Vec<apex_proto::common::v1::Chunk>,
    ) {
        out.extend(doc.chunks);
        for part in doc.parts {
            walk(part, out);
        }
    }
    let mut out = Vec::new();
    walk(doc, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[tokio::test]
    async fn put_is_content_addressed_and_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(dir.path().to_str().expect("utf8")).expect("open");
        let a = store
            .put("documents", "text/plain", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        let b = store
            .put("documents", "text/plain", Bytes::from_static(b"hello"))
            .await
            .expect("put");
        assert_eq!(a.key, b.key);
        assert_eq!(
            a.key,
            "documents/2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(a.size_bytes, 5);
        assert_eq!(
            store.get(&a.key).await.expect("get"),
            Bytes::from_static(b"hello")
        );
        assert_eq!(
            store.get_verified(&a).await.expect("verified"),
            Bytes::from_static(b"hello")
        );
    }

    #[tokio::test]
    async fn missing_blob_is_not_found_and_bad_key_is_invalid() {
        let store = BlobStore::open("memory://").expect("open");
        let missing = format!("documents/{}", "0".repeat(64));
        assert_eq!(
            store.get(&missing).await.expect_err("missing").code(),
            ErrorCode::NotFound
        );
        let bad = store.get("../etc/passwd").await.expect_err("bad key");
        assert_eq!(bad.code(), ErrorCode::InvalidArgument);
        store
            .delete(&missing)
            .await
            .expect("deleting an absent blob succeeds");
    }

    #[tokio::test]
    async fn tampered_blob_fails_verification() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = BlobStore::open(&format!("file://{}", dir.path().display())).expect("open");
        let blob = store
            .put("parsed", "application/json", Bytes::from_static(b"{}"))
            .await
            .expect("put");
        std::fs::write(dir.path().join(&blob.key), b"tampered").expect("tamper");
        let err = store.get_verified(&blob).await.expect_err("tampered");
        assert_eq!(err.code(), ErrorCode::FailedPrecondition);
    }
}
