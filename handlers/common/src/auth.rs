//! Bearer tokens to principals, and the contract's access answers.
//!
//! Decision: 401 for a missing or unknown token, 403 for a known token without the right,
//! and 404 (never 403) for a package the caller may not read, so a token cannot probe which
//! packages exist. The token itself is never logged or echoed.

use artifact_store_core::access::{Principal, Role};
use artifact_store_core::error::ErrorCode;

use crate::config::Config;
use crate::problem::ApiError;

/// The principal of the request's `Authorization: Bearer <token>`.
pub fn authenticate(authorization: Option<&str>, config: &Config) -> Result<Principal, ApiError> {
    let token = authorization
        .and_then(bearer_token)
        .ok_or_else(|| unauthorized("a bearer token is required"))?;
    config
        .auth_tokens
        .authenticate(token)
        .ok_or_else(|| unauthorized("the bearer token is not valid"))
}

/// The token of a `Bearer` credential (scheme case-insensitive).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized(detail: &str) -> ApiError {
    ApiError::new(ErrorCode::Unauthorized, detail).with_header("www-authenticate", "Bearer")
}

pub fn forbidden(detail: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::Forbidden, detail)
}

/// 403 unless the principal has `role`.
pub fn require_role(p: &Principal, role: Role) -> Result<(), ApiError> {
    if p.has_role(role) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "this action needs the {} role",
            serde_json::to_value(role)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        )))
    }
}

/// 404 for a package of a producer the principal may not read.
pub fn require_read(p: &Principal, producer: &str) -> Result<(), ApiError> {
    if p.can_read(producer) {
        Ok(())
    } else {
        Err(ApiError::not_found("package"))
    }
}

/// Uploads and finalization: 404 when unreadable, 403 when readable but not writable.
pub fn require_write(p: &Principal, producer: &str) -> Result<(), ApiError> {
    require_read(p, producer)?;
    if p.can_create_in(producer) {
        Ok(())
    } else {
        Err(forbidden(format!(
            "principal {} may not write packages of producer {producer}",
            p.name
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }

    fn principal(roles: Vec<Role>, producers: &[&str]) -> Principal {
        Principal {
            name: "p".into(),
            roles,
            producers: producers.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn access_answers() {
        let reader = principal(vec![Role::Reader], &["a"]);
        assert!(require_read(&reader, "a").is_ok());
        assert_eq!(require_read(&reader, "b").unwrap_err().status(), 404);
        assert_eq!(require_write(&reader, "a").unwrap_err().status(), 403);
        assert_eq!(require_write(&reader, "b").unwrap_err().status(), 404);
        let producer = principal(vec![Role::Producer], &["a"]);
        assert!(require_write(&producer, "a").is_ok());
        assert_eq!(
            require_role(&producer, Role::Operator)
                .unwrap_err()
                .status(),
            403
        );
    }
}
