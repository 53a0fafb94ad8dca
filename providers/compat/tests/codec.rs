//! Catalogue quirks applied to a fixture request, then encoded by the OpenAI codec: the
//! exact upstream body each provider receives (`tests/fixtures/quirks.json`).

use llmux_core::ChatRequest;
use llmux_provider_compat::{catalogue, quirks};
use llmux_provider_openai::codec;
use serde_json::Value;

#[test]
fn each_provider_receives_the_fixture_body() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/quirks.json")).expect("valid fixture");
    let cases = fixture["cases"].as_array().expect("cases");
    assert!(cases.len() >= 6);
    for case in cases {
        let prefix = case["provider"].as_str().expect("provider");
        let row = catalogue::find(prefix).unwrap_or_else(|| panic!("{prefix}: no such row"));
        let req: ChatRequest =
            serde_json::from_value(fixture["request"].clone()).expect("valid request");
        let body = codec::encode_chat(quirks::apply(row.quirks, req), "m").expect("encodes");
        let sent: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(sent, case["upstream"], "{prefix}: upstream body");
    }
}

#[test]
fn the_streamed_body_still_asks_for_usage() {
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/quirks.json")).expect("valid fixture");
    for row in catalogue::CATALOGUE {
        let req: ChatRequest =
            serde_json::from_value(fixture["request"].clone()).expect("valid request");
        let body = codec::encode_chat_stream(quirks::apply(row.quirks, req), "m").expect("encodes");
        let sent: Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(sent["stream"], true, "{}", row.prefix);
        assert_eq!(
            sent["stream_options"]["include_usage"], true,
            "{}: usage is requested so the call is metered",
            row.prefix
        );
    }
}
