//! Protobuf message types generated at build time from `proto/` (prost), and the
//! `FileDescriptorSet` of those files, served by gRPC server reflection.

/// `atomix.log`: the seed's LogService messages.
pub mod log {
    include!(concat!(env!("OUT_DIR"), "/atomix.log.rs"));
}

/// `grpc.health.v1`.
pub mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

/// `grpc.reflection.v1`.
pub mod reflection_v1 {
    include!(concat!(env!("OUT_DIR"), "/grpc.reflection.v1.rs"));
}

/// `grpc.reflection.v1alpha`: the same messages under the older package name, still asked for
/// by many tools.
pub mod reflection_v1alpha {
    include!(concat!(env!("OUT_DIR"), "/grpc.reflection.v1alpha.rs"));
}

/// The serialized `google.protobuf.FileDescriptorSet` of every file in `proto/`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/file_descriptor_set.bin"));
