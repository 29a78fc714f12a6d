//! Generates tonic/prost code for every `.proto` under `proto/apex` and a file descriptor set
//! that the services hand to tonic-reflection.

use std::{env, path::PathBuf};

const PROTOS: &[&str] = &[
    "proto/apex/common/v1/common.proto",
    "proto/apex/parser/v1/parser.proto",
    "proto/apex/extractor/v1/extractor.proto",
    "proto/apex/embedder/v1/embedder.proto",
    "proto/apex/writer/v1/writer.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed=build.rs");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        // Documents arrive as `Bytes` sliced from the received frame, not copied out of it.
        .bytes(".apex.parser.v1.ParseRequest.content")
        .file_descriptor_set_path(out.join("apex_descriptor.bin"))
        .compile_protos(PROTOS, &["proto"])?;
    Ok(())
}
