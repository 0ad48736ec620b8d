//! The ingest's REST response reader (`twinfeed_ingest::rest::ResponseReader`) and snapshot
//! check, then what the live ingest does with a body it accepts (a snapshot control line
//! through the pipeline). The first byte picks the framing of the rest: 0 the bytes are the
//! whole response; 1 a 200 with Content-Length around them; 2 a 200, chunked, the bytes split
//! into chunks at sizes taken from them; 3 a 200 with neither (the body ends with the stream).
//! Its high bits cut the response into pieces as the network would; pieces and the whole must
//! give the same answer, and a well-framed body comes back byte for byte.
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Small enough that the fuzzer reaches the cap (the ingest's is 8 MiB).
const MAX_BODY: usize = 65536;

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    let mut rest = body;
    while !rest.is_empty() {
        let size = (rest[0] as usize % 64 + 1).min(rest.len());
        out.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..size]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[size..];
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let framing = mode % 4;
    let response = match framing {
        0 => rest.to_vec(),
        1 => [
            format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                rest.len()
            )
            .into_bytes(),
            rest.to_vec(),
        ]
        .concat(),
        2 => chunked(rest),
        _ => [
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec(),
            rest.to_vec(),
        ]
        .concat(),
    };
    let Some((status, body)) = twinfeed_fuzz::rest_response(&response, mode >> 2, MAX_BODY) else {
        return;
    };
    if framing != 0 && rest.len() <= MAX_BODY {
        assert_eq!(status, 200);
        assert_eq!(body, rest, "a well-framed body is returned as sent");
    }
    let Ok(body) = String::from_utf8(body) else {
        return;
    };
    if status == 200 && twinfeed_ingest::rest::check_snapshot(&body).is_ok() {
        twinfeed_fuzz::snapshot_body_through_pipeline(&body);
    }
});
