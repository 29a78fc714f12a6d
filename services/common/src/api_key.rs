//! The API key a client of the gateway sends: `APEX_API_KEY`, else the local stack's admin
//! key (`.apex/admin.key`, written by `apex up`). The header carrying it is marked
//! sensitive, so no `Debug` output of a request or client shows it.

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};

use crate::stack::StackSettings;

/// The environment variable a key is taken from first.
pub const ENV: &str = "APEX_API_KEY";

/// The key to send, if there is one.
pub fn find(stack: &StackSettings) -> Option<String> {
    std::env::var(ENV)
        .ok()
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .or_else(|| {
            std::fs::read_to_string(stack.api_key_file())
                .ok()
                .map(|k| k.trim().to_owned())
                .filter(|k| !k.is_empty())
        })
}

/// `Authorization: Bearer <key>`, sensitive.
pub fn headers(key: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {key}")) {
        value.set_sensitive(true);
        headers.insert(AUTHORIZATION, value);
    }
    headers
}

/// `builder` sending `key` (when there is one) with every request.
pub fn authorized(builder: reqwest::ClientBuilder, key: Option<&str>) -> reqwest::ClientBuilder {
    match key {
        Some(key) => builder.default_headers(headers(key)),
        None => builder,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_header_is_a_bearer_token_that_debug_output_hides() {
        let h = headers("apex_0123456789ab_s3cr3t");
        assert_eq!(
            h[AUTHORIZATION].to_str().expect("ascii"),
            "Bearer apex_0123456789ab_s3cr3t"
        );
        assert!(h[AUTHORIZATION].is_sensitive());
        assert!(!format!("{h:?}").contains("s3cr3t"));
    }
}
