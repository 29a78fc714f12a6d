//! The details a status carries: packing a detail as `Any`, and reading back the mesh's
//! `ErrorInfo`, the `RetryInfo` delay, a `BadRequest` and every other detail.

use std::time::Duration;

use prost::Message as _;
use tonic::Status;
use tonic_types::pb;

/// Packs a message as `Any` under `type.googleapis.com/<full name>`.
pub fn pack(full_name: &str, message: &impl prost::Message) -> prost_types::Any {
    prost_types::Any {
        type_url: format!("type.googleapis.com/{full_name}"),
        value: message.encode_to_vec(),
    }
}

/// The details of a status: the mesh's `ErrorInfo` and every other `Any` it carries.
#[derive(Debug, Default)]
pub struct Details {
    pub error_info: Option<pb::ErrorInfo>,
    pub retry_delay: Option<Duration>,
    pub bad_request: Option<pb::BadRequest>,
    /// Every detail, packed, in order (for details of the service's own types).
    pub all: Vec<prost_types::Any>,
}

impl Details {
    /// The first detail of `type_url`'s type, decoded.
    pub fn find<M: prost::Message + Default>(&self, full_name: &str) -> Option<M> {
        let url = format!("type.googleapis.com/{full_name}");
        self.all
            .iter()
            .find(|a| a.type_url == url)
            .and_then(|a| M::decode(a.value.as_slice()).ok())
    }
}

/// Decodes a status's details (`None` when it carries none, or not as `google.rpc.Status`).
pub fn decode_details(status: &Status) -> Option<Details> {
    if status.details().is_empty() {
        return None;
    }
    let body = pb::Status::decode(status.details()).ok()?;
    let mut out = Details::default();
    for any in &body.details {
        match any.type_url.as_str() {
            "type.googleapis.com/google.rpc.ErrorInfo" if out.error_info.is_none() => {
                out.error_info = pb::ErrorInfo::decode(any.value.as_slice()).ok();
            }
            "type.googleapis.com/google.rpc.RetryInfo" => {
                out.retry_delay = pb::RetryInfo::decode(any.value.as_slice())
                    .ok()
                    .and_then(|r| r.retry_delay)
                    .map(|d| Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32));
            }
            "type.googleapis.com/google.rpc.BadRequest" => {
                out.bad_request = pb::BadRequest::decode(any.value.as_slice()).ok();
            }
            _ => {}
        }
    }
    out.all = body.details;
    Some(out)
}
