//! The venue's request parsing (`twinfeed_venue::http`, `twinfeed_venue::ws`): arbitrary bytes
//! as what a client sends on one connection. First byte even: HTTP requests, read one after the
//! other as the connection loop does, each one's parameters, upgrade check and keep-alive asked;
//! odd: websocket client frames after the upgrade, each text message parsed as the
//! subscription request it should be. The query parser also takes the bytes as one query.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinfeed_venue::http::{parse_query, percent_decode, read_request};
use twinfeed_venue::ws::{ClientMessage, ClientReader};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    for (name, value) in parse_query(&text) {
        assert!(!name.is_empty() || !value.is_empty() || text.contains('='));
    }
    let _ = percent_decode(&text);
    // Split the bytes between "already buffered" and "still on the socket".
    let split = rest.len().min(mode as usize >> 1);
    let (buffered, mut socket) = rest.split_at(split);
    twinfeed_fuzz::block_on(async {
        if mode & 1 == 0 {
            let mut buffer = buffered.to_vec();
            for _ in 0..64 {
                match read_request(&mut socket, &mut buffer).await {
                    Ok(Some(request)) => {
                        let _ = request.params();
                        let _ = request.param("symbol");
                        if request.is_websocket_upgrade() {
                            let key = request.header("sec-websocket-key").unwrap_or_default();
                            let _ = twinfeed_venue::ws::handshake_response(key);
                        }
                        for name in twinfeed_venue::streams::parse_list(&request.query) {
                            let _ = twinfeed_venue::streams::canonical(&name);
                            let _ = twinfeed_venue::streams::symbol(&name);
                        }
                        if !request.keep_alive() {
                            break;
                        }
                    }
                    Ok(None) | Err(_) => break,
                }
            }
        } else {
            let mut reader = ClientReader::new(socket, buffered.to_vec());
            for _ in 0..1024 {
                match reader.next().await {
                    Ok(Some(ClientMessage::Text(text))) => {
                        if let Ok(request) = serde_json::from_slice::<serde_json::Value>(&text) {
                            if let Some(params) = request.get("params").and_then(|p| p.as_array()) {
                                for name in params.iter().filter_map(|p| p.as_str()) {
                                    let _ = twinfeed_venue::streams::canonical(name);
                                    let _ = twinfeed_venue::streams::is_depth(name);
                                }
                            }
                        }
                    }
                    Ok(Some(ClientMessage::Close(_))) | Ok(None) | Err(_) => break,
                    Ok(Some(_)) => {}
                }
            }
        }
    });
});
