//! Text fit for errors and logs: URLs without credentials (the core's
//! [`redact_url`]), and HTTP client errors without the URL they embed.

pub use crate::workflow::redact::redact_url;

/// An HTTP client error and its causes, without the URL reqwest embeds in it.
pub fn http_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut out = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}
