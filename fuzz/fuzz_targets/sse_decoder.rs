//! The SSE decoder: no panic, and any split of the input gives the same events.
#![no_main]

use cng_core::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first two bytes choose two cut points; the rest is the stream.
    let (cuts, input) = data.split_at(data.len().min(2));
    let decode = |pieces: &[&[u8]]| {
        let mut d = SseDecoder::new();
        let mut out = Vec::new();
        for p in pieces {
            let _ = d.push(p, &mut out);
        }
        let end = d.finish(&mut out);
        (out, end)
    };
    let whole = decode(&[input]);
    let mut points: Vec<usize> = cuts.iter().map(|c| usize::from(*c) % (input.len() + 1)).collect();
    points.sort_unstable();
    let (a, rest) = input.split_at(points.first().copied().unwrap_or(0));
    let (b, c) = rest.split_at(points.get(1).copied().unwrap_or(0).saturating_sub(a.len()).min(rest.len()));
    assert_eq!(whole, decode(&[a, b, c]));
});
