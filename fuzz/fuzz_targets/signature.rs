//! Slack request signatures: `verify` on arbitrary headers, bodies and clocks.
//! It never panics; it accepts exactly the HMAC of `v0:{timestamp}:{body}` under
//! the secret (hex in either case) within five minutes of `now`; and a body
//! signed with the secret and a fresh timestamp always passes.
#![no_main]

use accessbot::slack::verify::{sign, verify, MAX_SKEW_SECS};
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;

/// A Unix time around now, as the server sees it.
const NOW: i64 = 1_780_000_000;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    secret: &'a str,
    timestamp: Option<&'a str>,
    signature: Option<&'a str>,
    /// Replace `signature` with the right one for this secret, timestamp and body.
    sign_it: bool,
    body: &'a [u8],
    /// `None`: the server's clock; `Some`: any clock at all.
    now: Option<i64>,
    /// Seconds added to `NOW` when `now` is `None`.
    drift: i16,
}

fuzz_target!(|i: Input| {
    let now = i.now.unwrap_or(NOW + i64::from(i.drift));
    let signed = match (i.sign_it, i.timestamp) {
        (true, Some(ts)) => Some(sign(i.secret, ts, i.body)),
        _ => None,
    };
    let signature = signed.as_deref().or(i.signature);
    let got = verify(i.secret, i.timestamp, signature, i.body, now);

    let fresh = |ts: &str| ts.trim().parse::<i64>().is_ok_and(|t| now.abs_diff(t) <= MAX_SKEW_SECS.unsigned_abs());
    if got.is_ok() {
        let (ts, sig) = (i.timestamp.expect("accepted without a timestamp"), signature.expect("without a signature"));
        let expected = sign(i.secret, ts, i.body);
        assert!(sig.starts_with("v0="), "accepted {sig:?}");
        assert_eq!(sig[3..].to_ascii_lowercase(), expected[3..], "accepted a signature that is not the HMAC");
        assert!(fresh(ts), "accepted a stale timestamp {ts:?} at {now}");
    }
    if let (Some(_), Some(ts)) = (&signed, i.timestamp) {
        if fresh(ts) {
            assert_eq!(got, Ok(()), "a correctly signed, fresh request was refused");
        }
    }
});
