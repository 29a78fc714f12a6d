//! Idempotency records: a request's fingerprint with its first answer, so a retry under the
//! same key gets that answer and a different request under a used key is refused.

use apex_common::ServiceError;
use apex_proto::writer::v1::WriteDocumentResponse;

use super::{StoreKind, Writer};

impl Writer {
    /// The stored answer for `key`, or `FAILED_PRECONDITION` when the key was used for a
    /// different request (another `fingerprint`).
    pub(super) async fn replay<M: prost::Message + Default>(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<M>, ServiceError> {
        let Some(record) = self
            .step(
                StoreKind::Redis,
                "idempotency",
                self.redis.idempotency_record(key),
            )
            .await?
        else {
            return Ok(None);
        };
        if record.len() < 64 || &record[..64] != fingerprint.as_bytes() {
            return Err(ServiceError::FailedPrecondition(format!(
                "idempotency key `{key}` was already used for a different request"
            )));
        }
        M::decode(&record[64..]).map(Some).map_err(|e| {
            ServiceError::Internal(anyhow::anyhow!("idempotency record for `{key}`: {e}"))
        })
    }

    /// A write's stored answer, marked `replayed`.
    pub(super) async fn replay_write(
        &self,
        key: &str,
        fingerprint: &str,
    ) -> Result<Option<WriteDocumentResponse>, ServiceError> {
        Ok(self
            .replay::<WriteDocumentResponse>(key, fingerprint)
            .await?
            .map(|mut r| {
                r.replayed = true;
                r
            }))
    }

    /// Stores `answer` under `key` with the request's fingerprint. A failure only costs a
    /// retry its replay (it rewrites the same state), so it is logged, not returned.
    pub(super) async fn remember(
        &self,
        key: &str,
        fingerprint: String,
        answer: &impl prost::Message,
    ) {
        let mut record = fingerprint.into_bytes();
        record.extend(answer.encode_to_vec());
        if let Err(e) = self
            .redis
            .put_idempotency_record(key, &record, self.idempotency_ttl)
            .await
        {
            tracing::warn!(key, error = %e, "idempotency record not stored; a retry rewrites");
        }
    }
}
