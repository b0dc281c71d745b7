use super::*;
use crate::wire::poll::PollItemHeader;
use crate::wire::record::encode_record;

fn item(buf: &mut Vec<u8>, topic: &str, offset: i64, bodies: &[&[u8]]) {
    let mut raw = Vec::new();
    for b in bodies {
        encode_record(1, b, &mut raw);
    }
    item_payload(buf, topic, offset, &checksummed(&raw));
}

/// One zstd frame with a content checksum, as chunks are stored.
fn checksummed(raw: &[u8]) -> Vec<u8> {
    let mut c = zstd::bulk::Compressor::new(1).unwrap();
    c.include_checksum(true).unwrap();
    c.compress(raw).unwrap()
}

fn item_payload(buf: &mut Vec<u8>, topic: &str, offset: i64, payload: &[u8]) {
    PollItemHeader {
        token: -9223372036854775808,
        range_index: 1,
        gen_version: 1,
        topic,
        offset,
        payload_len: payload.len() as u32,
    }
    .encode(buf);
    buf.extend_from_slice(payload);
}

fn render_all(body: &[u8], max_frame: usize) -> Result<String, RenderError> {
    render_with(body, usize::MAX, max_frame, Encoding::Auto).map(|r| r.0)
}

fn render_with(
    body: &[u8],
    bound: usize,
    max_frame: usize,
    encoding: Encoding,
) -> Result<(String, usize), RenderError> {
    let body = body.to_vec();
    rt::block_on(async move {
        let r = render(&body, bound, max_frame, encoding).await?;
        Ok((String::from_utf8(r.json).expect("UTF-8 JSON"), r.items))
    })
}

#[test]
fn decompression_bomb_is_refused() {
    // 64 MiB of records compressed to a few KiB: far beyond what a chunk can hold with
    // 1 MiB frames.
    let mut raw = Vec::new();
    encode_record(1, &vec![0u8; 64 << 20], &mut raw);
    let payload = checksummed(&raw);
    assert!(payload.len() < 64 << 10, "{}", payload.len());
    let mut buf = 1u16.to_be_bytes().to_vec();
    item_payload(&mut buf, "t", 0, &payload);
    match render_all(&buf, 1 << 20) {
        Err(RenderError::Chunk(ChunkError::TooLarge { .. })) => {}
        other => panic!("{other:?}"),
    }
    // The same records are fine when the broker's frames may be that large.
    assert!(render_all(&buf, 128 << 20).is_ok());

    // After a good item, the response ends before the bad one (the next poll starts there).
    let mut buf = 2u16.to_be_bytes().to_vec();
    item(&mut buf, "t", 0, &[b"1"]);
    item_payload(&mut buf, "t", 1, &payload);
    let (s, n) = render_with(&buf, usize::MAX, 1 << 20, Encoding::Auto).unwrap();
    assert_eq!(n, 1);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&s).unwrap()[0]["values"][0],
        1
    );
}

#[test]
fn json_shape() {
    let mut buf = 2u16.to_be_bytes().to_vec();
    item(
        &mut buf,
        "t",
        7,
        &[br#"{"a":1}"#, b" 42 ", b"not json \"x\""],
    );
    item(&mut buf, "u", 0, &[b"[1,2]"]);
    let s = render_all(&buf, 4 << 20).unwrap();
    assert_eq!(
        s,
        r#"[{"topic":"t","token":"-9223372036854775808","rangeIndex":1,"version":1,"startOffset":"7","values":[{"a":1},42,"not json \"x\""]},{"topic":"u","token":"-9223372036854775808","rangeIndex":1,"version":1,"startOffset":"0","values":[[1,2]]}]"#
    );
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v[0]["values"][2], "not json \"x\"");
    assert_eq!(render_all(&[0, 0], 4 << 20).unwrap(), "[]");
}

#[test]
fn bodies_that_are_not_utf8_come_back_exactly_in_base64() {
    let binary: &[u8] = &[0xff, 0xfe, 0x00, b'"', 0x80, b'\n'];
    let mut buf = 2u16.to_be_bytes().to_vec();
    item(&mut buf, "t", 0, &[b"{\"a\":1}", binary, b" plain "]);
    item(&mut buf, "t", 3, &[b"{\"b\":2}"]);
    let s = render_all(&buf, 4 << 20).unwrap();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    // The whole first item is in base64, byte-exact (whitespace included); the second is not.
    assert_eq!(v[0]["encoding"], "base64");
    let values: Vec<Vec<u8>> = v[0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| base64::decode(x.as_str().unwrap().as_bytes()).unwrap())
        .collect();
    assert_eq!(values, [&b"{\"a\":1}"[..], binary, b" plain "]);
    assert!(v[1].get("encoding").is_none());
    assert_eq!(v[1]["values"][0]["b"], 2);

    // Asked for, every item is base64.
    let (s, n) = render_with(&buf, usize::MAX, 4 << 20, Encoding::Base64).unwrap();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(n, 2);
    assert_eq!(v[1]["encoding"], "base64");
    assert_eq!(v[1]["values"][0], base64::encode(b"{\"b\":2}"));
}

#[test]
fn strings_escape_like_serde_json() {
    let all: Vec<u8> = (0u8..0x80).chain("é€😀".bytes()).collect();
    let text = String::from_utf8(all).unwrap();
    let mut out = b"\"".to_vec();
    // Cut anywhere, even inside a character: the pieces concatenate.
    for piece in text.as_bytes().chunks(5) {
        escape_into(piece, &mut out);
    }
    out.push(b'"');
    let out = String::from_utf8(out).unwrap();
    assert_eq!(out, serde_json::to_string(&text).unwrap());
    assert_eq!(serde_json::from_str::<String>(&out).unwrap(), text);
}

#[test]
fn bounded_but_at_least_one_item() {
    let big = vec![b'a'; 10_000];
    let mut buf = 3u16.to_be_bytes().to_vec();
    for i in 0..3 {
        item(&mut buf, "t", i, &[&big]);
    }
    // One item takes ~10.1 KB: a 1 KB bound still sends the first.
    let (s, n) = render_with(&buf, 1000, 4 << 20, Encoding::Auto).unwrap();
    assert_eq!(n, 1);
    let v: serde_json::Value = serde_json::from_str(&s).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    // Two fit in 25 KB, not three.
    let (s, n) = render_with(&buf, 25_000, 4 << 20, Encoding::Auto).unwrap();
    assert_eq!(n, 2);
    assert!(s.len() <= 25_000);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&s).unwrap()[1]["startOffset"],
        "1"
    );
    // Escaping can grow an item past the bound after it was started: it is dropped whole.
    let quotes = vec![b'"'; 6_000];
    let mut buf = 2u16.to_be_bytes().to_vec();
    item(&mut buf, "t", 0, &[b"1"]);
    item(&mut buf, "t", 1, &[&quotes]);
    let (s, n) = render_with(&buf, 10_000, 4 << 20, Encoding::Auto).unwrap();
    assert_eq!(n, 1);
    assert!(s.len() < 200, "{s}");
    assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok());
}

#[test]
fn encoding_parameter() {
    assert_eq!(Encoding::parse(None), Some(Encoding::Auto));
    assert_eq!(Encoding::parse(Some("")), Some(Encoding::Auto));
    assert_eq!(Encoding::parse(Some("base64")), Some(Encoding::Base64));
    assert_eq!(Encoding::parse(Some("hex")), None);
}
