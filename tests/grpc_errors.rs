//! The gRPC layer's contract, with an independent client (tonic) and raw HTTP/2: unknown
//! methods, content types, size limits, deadlines, cancellation, health and reflection.

mod common;
mod grpc_client;

use std::time::Duration;

use common::Broker;
use grpc_client::{connect, raw_call, raw_request, runtime, Client};
use prost::Message;
use shardlog::proto::reflection_v1::server_reflection_request::MessageRequest;
use shardlog::proto::reflection_v1::server_reflection_response::MessageResponse;
use tonic::Code;

#[test]
fn unknown_methods_are_unimplemented() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        for path in ["/atomix.log.LogService/Nope", "/no.such.Service/Call"] {
            let err = c.unary_any(path, "", None).await.unwrap_err();
            assert_eq!(err.code(), Code::Unimplemented, "{path}: {err:?}");
            assert!(err.message().contains(path), "{}", err.message());
        }
        // The connection is still good.
        assert_eq!(c.health_check("").await.unwrap(), 1);
    });
}

#[test]
fn wrong_content_type_is_415() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        let r = raw_call(
            broker.http,
            "/atomix.log.LogService/Produce",
            &[("content-type", "application/json")],
            vec![b"{}".to_vec()],
        )
        .await;
        assert_eq!(r.status, 415);
        assert!(String::from_utf8_lossy(&r.body).contains("application/grpc"));
        // Plain HTTP/2 requests go to the router: /status works over h2 too.
        let r = raw_request(broker.http, http::Method::GET, "/status", &[], vec![]).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"status":"ok","shards":1}"#);
    });
}

#[test]
fn unsupported_encoding_and_compressed_flag() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        let grpc = ("content-type", "application/grpc");
        let r = raw_call(
            broker.http,
            "/grpc.health.v1.Health/Check",
            &[grpc, ("grpc-encoding", "gzip")],
            vec![vec![0, 0, 0, 0, 0]],
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("12"), "{r:?}");
        assert!(r.grpc_message().contains("gzip"));
        // Compressed flag without a grpc-encoding: a protocol error, INTERNAL.
        let r = raw_call(
            broker.http,
            "/grpc.health.v1.Health/Check",
            &[grpc],
            vec![vec![1, 0, 0, 0, 0]],
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("13"), "{r:?}");
        assert!(
            r.grpc_message().contains("compressed"),
            "{}",
            r.grpc_message()
        );
    });
}

#[test]
fn oversized_message_is_resource_exhausted_and_the_connection_survives() {
    let broker = Broker::start_with(1, &["--grpc-max-message-size", "64KiB"]);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        let err = c
            .produce(&[("topic", "big")], vec![vec![7u8; 100 << 10]])
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
        assert!(
            err.message().contains("maximum message size"),
            "{}",
            err.message()
        );
        // Same connection, next call.
        assert_eq!(c.health_check("").await.unwrap(), 1);
        let err = c.unary_any("/x.Y/Z", "", None).await.unwrap_err();
        assert_eq!(err.code(), Code::Unimplemented);
    });
}

#[test]
fn grpc_timeout_is_deadline_exceeded() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        // Raw HTTP/2, so that it is the server's deadline that ends the call (tonic also
        // enforces grpc-timeout on its side).
        let started = std::time::Instant::now();
        let r = raw_call(
            broker.http,
            "/grpc.health.v1.Health/Watch",
            &[
                ("content-type", "application/grpc"),
                ("grpc-timeout", "300m"),
            ],
            vec![vec![0, 0, 0, 0, 0]],
        )
        .await;
        let took = started.elapsed();
        assert_eq!(r.grpc_status().as_deref(), Some("4"), "{r:?}");
        assert!(r.grpc_message().contains("deadline"));
        // The status was sent first: HealthCheckResponse{status: SERVING}.
        assert_eq!(r.body, [0, 0, 0, 0, 2, 0x08, 1]);
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(10),
            "{took:?}"
        );
        // A malformed grpc-timeout is refused.
        let r = raw_call(
            broker.http,
            "/grpc.health.v1.Health/Check",
            &[
                ("content-type", "application/grpc"),
                ("grpc-timeout", "soon"),
            ],
            vec![vec![0, 0, 0, 0, 0]],
        )
        .await;
        assert_eq!(r.grpc_status().as_deref(), Some("3"));
    });
}

#[test]
fn health_check_and_watch() {
    let broker = Broker::start(2);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        assert_eq!(c.health_check("").await.unwrap(), 1);
        assert_eq!(c.health_check("atomix.log.LogService").await.unwrap(), 1);
        let err = c.health_check("no.such.Service").await.unwrap_err();
        assert_eq!(err.code(), Code::NotFound);
        let mut w = c.health_watch("no.such.Service", None).await.unwrap();
        assert_eq!(w.message().await.unwrap().unwrap().status, 3);
        // Cancelling the watch (dropping it) leaves the connection usable.
        drop(w);
        assert_eq!(c.health_check("").await.unwrap(), 1);
    });
}

#[test]
fn reflection_lists_services_and_serves_files() {
    let broker = Broker::start(1);
    runtime().block_on(async {
        let mut c = Client::new(connect(broker.http).await);
        for path in [
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        ] {
            let r = c
                .reflect(path, MessageRequest::ListServices(String::new()))
                .await
                .unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = r.message_response else {
                panic!("{path}: {r:?}")
            };
            let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            assert!(
                names.contains(&"atomix.log.LogService".to_string()),
                "{names:?}"
            );
            assert!(
                names.contains(&"grpc.health.v1.Health".to_string()),
                "{names:?}"
            );

            let r = c
                .reflect(
                    path,
                    MessageRequest::FileContainingSymbol("atomix.log.LogService".into()),
                )
                .await
                .unwrap();
            let Some(MessageResponse::FileDescriptorResponse(files)) = r.message_response else {
                panic!("{path}: {r:?}")
            };
            let file =
                prost_types::FileDescriptorProto::decode(files.file_descriptor_proto[0].clone())
                    .unwrap();
            assert_eq!(file.name(), "atomix/log/log.proto");
            let service = &file.service[0];
            assert_eq!(service.name(), "LogService");
            let methods: Vec<&str> = service.method.iter().map(|m| m.name()).collect();
            assert_eq!(methods, ["Produce", "Consume"]);
            assert!(service.method[0].client_streaming());
            assert!(service.method[1].server_streaming());

            let r = c
                .reflect(path, MessageRequest::FileByFilename("missing.proto".into()))
                .await
                .unwrap();
            assert!(matches!(
                r.message_response,
                Some(MessageResponse::ErrorResponse(ref e)) if e.error_code == 5
            ));
        }
    });
}
