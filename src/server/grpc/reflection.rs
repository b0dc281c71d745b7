//! gRPC server reflection (`grpc.reflection.v1` and `v1alpha`, whose messages are identical on
//! the wire, so both are served with the v1 types), from the `FileDescriptorSet` written at
//! build time. Answers `list_services`, `file_by_filename` and `file_containing_symbol` (a
//! file comes with its transitive dependencies); shardlog's protos declare no extensions, so
//! extension queries answer NOT_FOUND (or an empty list for a known message type).

use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

use bytes::Bytes;
use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use crate::proto::reflection_v1::server_reflection_request::MessageRequest;
use crate::proto::reflection_v1::server_reflection_response::MessageResponse;
use crate::proto::reflection_v1::{
    ErrorResponse, ExtensionNumberResponse, FileDescriptorResponse, ListServiceResponse,
    ServerReflectionRequest, ServerReflectionResponse, ServiceResponse,
};
use crate::proto::FILE_DESCRIPTOR_SET;

use super::call::{Requests, Responder};
use super::status::{Code, Status};
use super::SERVICES;

/// The descriptor set, indexed.
struct Index {
    /// File name → (serialized FileDescriptorProto, dependencies).
    files: HashMap<String, (Bytes, Vec<String>)>,
    /// Fully-qualified symbol (no leading dot) → file name.
    symbols: HashMap<String, String>,
    /// Fully-qualified message types.
    messages: HashSet<String>,
}

static INDEX: LazyLock<Index> = LazyLock::new(|| {
    let set = FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap_or_default();
    let mut index = Index {
        files: HashMap::new(),
        symbols: HashMap::new(),
        messages: HashSet::new(),
    };
    for file in &set.file {
        index.add(file);
    }
    index
});

impl Index {
    fn add(&mut self, file: &FileDescriptorProto) {
        let name = file.name().to_string();
        let package = file.package();
        let prefix = if package.is_empty() {
            String::new()
        } else {
            format!("{package}.")
        };
        for m in &file.message_type {
            self.add_message(&prefix, m, &name);
        }
        for e in &file.enum_type {
            self.symbols
                .insert(format!("{prefix}{}", e.name()), name.clone());
        }
        for s in &file.service {
            let service = format!("{prefix}{}", s.name());
            for m in &s.method {
                self.symbols
                    .insert(format!("{service}.{}", m.name()), name.clone());
            }
            self.symbols.insert(service, name.clone());
        }
        let bytes = Bytes::from(file.encode_to_vec());
        self.files.insert(name, (bytes, file.dependency.clone()));
    }

    fn add_message(&mut self, prefix: &str, m: &DescriptorProto, file: &str) {
        let full = format!("{prefix}{}", m.name());
        let nested = format!("{full}.");
        for n in &m.nested_type {
            self.add_message(&nested, n, file);
        }
        for e in &m.enum_type {
            self.symbols
                .insert(format!("{nested}{}", e.name()), file.to_string());
        }
        self.symbols.insert(full.clone(), file.to_string());
        self.messages.insert(full);
    }

    /// `file` and everything it imports, transitively, the file itself first.
    fn with_dependencies(&self, file: &str) -> Option<Vec<Bytes>> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut todo = vec![file.to_string()];
        while let Some(f) = todo.pop() {
            if !seen.insert(f.clone()) {
                continue;
            }
            let (bytes, deps) = self.files.get(&f)?;
            out.push(bytes.clone());
            todo.extend(deps.iter().rev().cloned());
        }
        Some(out)
    }
}

/// Serves one reflection stream: one response per request, until the client half-closes.
pub async fn serve(requests: &mut Requests, responder: &Responder) -> Result<(), Status> {
    while let Some(msg) = requests.next().await? {
        let request = ServerReflectionRequest::decode(msg)?;
        let answer = answer(&INDEX, request.message_request.as_ref());
        responder
            .send(&ServerReflectionResponse {
                valid_host: request.host.clone(),
                original_request: Some(request),
                message_response: Some(answer),
            })
            .await?;
    }
    Ok(())
}

fn not_found(message: String) -> MessageResponse {
    MessageResponse::ErrorResponse(ErrorResponse {
        error_code: Code::NotFound as i32,
        error_message: message,
    })
}

fn files(index: &Index, file: &str) -> MessageResponse {
    match index.with_dependencies(file) {
        Some(file_descriptor_proto) => {
            MessageResponse::FileDescriptorResponse(FileDescriptorResponse {
                file_descriptor_proto,
            })
        }
        None => not_found(format!("no file named '{file}'")),
    }
}

fn answer(index: &Index, request: Option<&MessageRequest>) -> MessageResponse {
    match request {
        Some(MessageRequest::ListServices(_)) => {
            MessageResponse::ListServicesResponse(ListServiceResponse {
                service: SERVICES
                    .iter()
                    .map(|s| ServiceResponse {
                        name: s.to_string(),
                    })
                    .collect(),
            })
        }
        Some(MessageRequest::FileByFilename(name)) => files(index, name),
        Some(MessageRequest::FileContainingSymbol(symbol)) => {
            let symbol = symbol.trim_start_matches('.');
            match index.symbols.get(symbol) {
                Some(file) => files(index, file),
                None => not_found(format!("no symbol named '{symbol}'")),
            }
        }
        Some(MessageRequest::FileContainingExtension(ext)) => not_found(format!(
            "no extension {} of '{}'",
            ext.extension_number, ext.containing_type
        )),
        Some(MessageRequest::AllExtensionNumbersOfType(ty)) => {
            let ty = ty.trim_start_matches('.');
            if index.messages.contains(ty) {
                MessageResponse::AllExtensionNumbersResponse(ExtensionNumberResponse {
                    base_type_name: ty.to_string(),
                    extension_number: Vec::new(),
                })
            } else {
                not_found(format!("no message type named '{ty}'"))
            }
        }
        None => MessageResponse::ErrorResponse(ErrorResponse {
            error_code: Code::InvalidArgument as i32,
            error_message: "the request names no reflection query".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_finds_services_messages_and_methods() {
        let index = &*INDEX;
        for symbol in [
            "atomix.log.LogService",
            "atomix.log.LogService.Consume",
            "atomix.log.LogRecord",
            "grpc.health.v1.HealthCheckResponse.ServingStatus",
            "grpc.reflection.v1alpha.ServerReflection",
        ] {
            assert!(index.symbols.contains_key(symbol), "{symbol}");
        }
        let MessageResponse::FileDescriptorResponse(r) = answer(
            index,
            Some(&MessageRequest::FileContainingSymbol(
                ".atomix.log.LogService".into(),
            )),
        ) else {
            panic!("expected a file")
        };
        let file = FileDescriptorProto::decode(r.file_descriptor_proto[0].clone()).unwrap();
        assert_eq!(file.name(), "atomix/log/log.proto");
        assert_eq!(file.package(), "atomix.log");
        assert!(matches!(
            answer(
                index,
                Some(&MessageRequest::FileByFilename("nope.proto".into()))
            ),
            MessageResponse::ErrorResponse(ErrorResponse { error_code: 5, .. })
        ));
    }
}
