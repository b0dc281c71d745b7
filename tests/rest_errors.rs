//! Every bad input to the REST API answered with a clear 4xx naming what was wrong, over one
//! keep-alive HTTP/1.1 connection where the error allows it, and nothing of it stored.

mod common;

use std::io::{Read, Write};

use common::http::{plain, HttpClient};
use common::Broker;

#[test]
fn bad_input_is_answered_with_clear_4xx() {
    let broker = Broker::start_with(1, &["--max-frame-size", "65536"]);
    let mut c = HttpClient::connect(broker.http);
    let check = |r: common::http::Response, status: u16, needle: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert!(
            r.text().contains(needle),
            "'{}' should mention '{needle}'",
            r.text()
        );
    };
    // Unknown consumers.
    check(c.poll_raw("ghost", None, None), 409, "not registered");
    check(c.commit("ghost"), 409, "not registered");
    check(c.goodbye("ghost"), 409, "not registered");
    // Missing and malformed parameters.
    check(
        c.request("POST", "/v1/consumer/poll", &[], b""),
        400,
        "'consumerId'",
    );
    check(
        c.request("POST", "/v1/consumer/commit?consumerId=", &[], b""),
        400,
        "'consumerId'",
    );
    check(
        c.request("POST", "/v1/consumer/goodbye", &[], b""),
        400,
        "'consumerId'",
    );
    check(
        c.request("PUT", "/v1/consumer/register?group=g&topic=t", &[], b""),
        400,
        "'consumerId'",
    );
    check(
        c.request(
            "PUT",
            "/v1/consumer/register?consumerId=a&group=g",
            &[],
            b"",
        ),
        400,
        "'topic'",
    );
    check(
        c.request(
            "PUT",
            "/v1/consumer/register?consumerId=a&topic=t&onNewGroup=never",
            &[],
            b"",
        ),
        400,
        "'onNewGroup'",
    );
    check(
        c.request(
            "PUT",
            "/v1/consumer/register?consumerId=a&topic=t&group=a/b",
            &[],
            b"",
        ),
        400,
        "'group'",
    );
    check(
        c.request(
            "PUT",
            "/v1/consumer/register?consumerId=a&topic=no%20spaces",
            &[],
            b"",
        ),
        400,
        "'topic'",
    );
    check(
        c.request(
            "PUT",
            "/v1/consumer/register?consumerId=%zz&topic=t",
            &[],
            b"",
        ),
        400,
        "consumerId",
    );
    check(
        c.request(
            "PUT",
            "/v1/consumer/register?consumerId=a%01&topic=t",
            &[],
            b"",
        ),
        400,
        "control",
    );
    let long = "x".repeat(300);
    check(
        c.register(&long, "g", &["t"], "startFromEarliest"),
        400,
        "limit is 255",
    );
    check(
        c.request(
            "POST",
            "/v1/consumer/poll?consumerId=a&maxWaitMs=-5",
            &[],
            b"",
        ),
        400,
        "'maxWaitMs'",
    );
    check(
        c.request("GET", "/v1/consumer/poll?consumerId=a", &[], b""),
        405,
        "POST",
    );

    // A registered consumer with nothing to read: 204 with Retry-After; topics are created.
    assert_eq!(
        c.register("a", "", &["fresh"], "startFromEarliest").status,
        200
    );
    let r = c.poll_raw("a", None, None);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(r.header("content-length"), None);
    assert!(r.body.is_empty());
    let r = c.poll_raw("a", Some(100), Some("application/json"));
    assert_eq!(r.status, 204);
    // Still on the same keep-alive connection after all of the above.
    assert_eq!(c.request("GET", "/status", &[], b"").status, 200);

    // Produce.
    let json = "application/json";
    check(c.produce("bad%20topic", None, json, b"1"), 400, "topic");
    check(c.produce("..", None, json, b"1"), 400, "reserved");
    check(c.produce("a*b", None, json, b"1"), 400, "topic");
    check(c.produce("t", None, json, b""), 400, "no message");
    check(
        c.produce("t", None, "application/x-ndjson", b"\n\n"),
        400,
        "no message",
    );
    check(
        c.produce("t", None, "text/plain", b"x"),
        415,
        "application/x-ndjson",
    );
    check(
        c.request("POST", "/v1/topic/t/messages", &[], b"x"),
        415,
        "(none)",
    );
    let key = "k".repeat(256);
    check(
        c.produce("t", Some(&key), json, b"1"),
        400,
        "'partitionKey'",
    );
    check(
        c.request(
            "POST",
            "/v1/topic/t/messages?timestamp=soon",
            &[("content-type", json)],
            b"1",
        ),
        400,
        "'timestamp'",
    );
    // Over --max-frame-size (64 KiB) but under the transport limit (1 MiB): the handler's 413.
    let big = vec![b'7'; 70_000];
    check(c.produce("t", None, json, &big), 413, "--max-frame-size");
    // Over the transport limit: 413 before the body is read, and the connection closes.
    // (Only the head is sent: the broker answers from Content-Length alone.)
    let mut c2 = HttpClient::connect(broker.http);
    c2.stream
        .write_all(
            b"POST /v1/topic/t/messages HTTP/1.1\r\ncontent-type: application/json\r\n\
              content-length: 2097152\r\n\r\n",
        )
        .unwrap();
    let r = common::http::read_response(&mut c2.stream).expect("an answer");
    assert_eq!(r.header("connection"), Some("close"));
    check(r, 413, "limited to");
    let mut rest = Vec::new();
    assert_eq!(c2.stream.read_to_end(&mut rest).unwrap_or(0), 0, "closed");
    check(
        c.request("GET", "/v1/topic/t/messages", &[], b""),
        405,
        "POST",
    );
    // Nothing of the refused requests was stored; a good one still is.
    assert_eq!(
        c.produce("t", Some("k"), json, b"{\"ok\":true}").status,
        200
    );
    assert_eq!(
        c.register("r", "g", &["t"], "startFromEarliest").status,
        200
    );
    let items = c.drain("r");
    let bodies: Vec<String> = items
        .iter()
        .flat_map(|i| &i.records)
        .map(|r| plain(&r.2))
        .collect();
    assert_eq!(bodies, ["{\"ok\":true}"]);
}
