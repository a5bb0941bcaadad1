//! `X-Drover-Signature`: HMAC-SHA256 of the exact request body with the webhook's
//! secret, as `sha256=<hex>` (the form GitHub uses, so existing verifiers work).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header value's prefix, naming the algorithm.
pub const PREFIX: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// The `X-Drover-Signature` value for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    format!("{PREFIX}{}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` with `secret`, compared in constant time.
pub fn verify(secret: &[u8], body: &[u8], header: &str) -> bool {
    let Some(digest) = header
        .strip_prefix(PREFIX)
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
    else {
        return false;
    };
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts any key length");
    mac.update(body);
    mac.verify_slice(&digest).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_test_case_2() {
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    /// The example of GitHub's "Validating webhook deliveries": a receiver written for
    /// GitHub's header verifies Drover's.
    #[test]
    fn github_documented_example() {
        assert_eq!(
            sign(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn verify_accepts_only_the_exact_body_and_secret() {
        let header = sign(b"secret", b"{\"a\":1}");
        assert!(verify(b"secret", b"{\"a\":1}", &header));
        assert!(
            !verify(b"secret", b"{\"a\": 1}", &header),
            "one byte changed"
        );
        assert!(!verify(b"other", b"{\"a\":1}", &header), "wrong secret");
        assert!(!verify(b"secret", b"{\"a\":1}", &header[PREFIX.len()..]));
        assert!(!verify(b"secret", b"{\"a\":1}", "sha256=zz"));
    }
}
