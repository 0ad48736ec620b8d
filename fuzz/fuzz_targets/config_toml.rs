//! Arbitrary text as a feature/ingest TOML configuration: refused with an error or accepted,
//! and an accepted one builds a pipeline that takes a line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use twinfeed_features::{FeatureConfig, Pipeline};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(config) = FeatureConfig::from_toml_str(text, "fuzz.toml") {
        let _ = config.fingerprint();
        let _ = FeatureConfig::from_toml_str(&config.to_toml(), "round trip")
            .expect("a configuration's own TOML is accepted");
        let mut pipeline = Pipeline::new(config);
        let mut out = Vec::new();
        pipeline.push_line(
            b"1723161255088169167 {\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\",\"E\":1723161256313,\"T\":1723161256313,\"s\":\"BTCUSDT\",\"t\":5101190000,\"p\":\"61800.20\",\"q\":\"0.002\",\"X\":\"MARKET\",\"m\":true}}",
            &mut out,
        );
        twinfeed_fuzz::invariants::check(&pipeline, &out);
    }
});
