//! The reload's hand-over as the new image reads it: `Handover::decode` on
//! arbitrary bytes (what `handover::receive` gives it from the inherited
//! memfd).
//!
//! Checked besides "no panic" (and no allocation a short input cannot pay
//! for, which ASan's and libFuzzer's memory limits would report): whatever
//! decodes, encodes to bytes that decode to the same hand-over, and those
//! bytes are a fixed point of decode then encode.
#![no_main]

use hostinfod::handover::Handover;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = Handover::decode(data) else {
        return;
    };
    let bytes = h.encode();
    let again = Handover::decode(&bytes)
        .unwrap_or_else(|e| panic!("an encoded hand-over does not decode: {e}"));
    assert_eq!(again, h, "decode(encode(h)) != h");
    assert_eq!(again.encode(), bytes, "encode is not canonical");
});
