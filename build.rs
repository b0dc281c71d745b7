//! Compiles the protobuf definitions in `proto/` into prost message types, and writes their
//! `FileDescriptorSet` (for gRPC server reflection) next to them. The protoc used is the one
//! shipped inside the `protoc-bin-vendored` crate, so no system install is needed.

use std::path::PathBuf;

const PROTOS: &[&str] = &[
    "proto/atomix/log/log.proto",
    "proto/grpc/health/v1/health.proto",
    "proto/grpc/reflection/v1/reflection.proto",
    "proto/grpc/reflection/v1alpha/reflection.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    let mut config = prost_build::Config::new();
    config
        .protoc_executable(protoc)
        // `bytes` fields become `Bytes`, sliced from the received buffer without a copy.
        .bytes(["."])
        .file_descriptor_set_path(out.join("file_descriptor_set.bin"));
    config.compile_protos(PROTOS, &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
