#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Some(run) = shardlog::fuzzing::target("grpc_messages") {
        run(data);
    }
});
