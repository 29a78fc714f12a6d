//! Generated tonic/prost code for the Apex Ingest contracts (`apex.*.v1`) and the file
//! descriptor set used for server reflection. Nothing but generated code lives here.

#![allow(
    missing_docs,
    unreachable_pub,
    missing_debug_implementations,
    clippy::all
)]

pub mod common {
    pub mod v1 {
        tonic::include_proto!("apex.common.v1");
    }
}
pub mod parser {
    pub mod v1 {
        tonic::include_proto!("apex.parser.v1");
    }
}
pub mod extractor {
    pub mod v1 {
        tonic::include_proto!("apex.extractor.v1");
    }
}
pub mod embedder {
    pub mod v1 {
        tonic::include_proto!("apex.embedder.v1");
    }
}
pub mod writer {
    pub mod v1 {
        tonic::include_proto!("apex.writer.v1");

        /// The full name under which a failed write's per-store outcomes (a
        /// `WriteDocumentResponse`) travel in the error status's details.
        pub const WRITE_OUTCOMES: &str = "apex.writer.v1.WriteDocumentResponse";
    }
}

/// Encoded `FileDescriptorSet` of every Apex proto, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("apex_descriptor");
