//! HTTP route matching and Spin's `spin-*` request headers.
//!
//! Decision: routes are split into segments once at start. A route is an exact path, may contain
//! `:name` segments (one path segment each) and may end in `/...` (any rest, including none).
//! The most specific route wins: exact routes before wildcard routes, then more literal
//! segments, then more segments; ties keep manifest order (Spin rejects duplicate routes).

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone)]
pub struct RouteEntry {
    /// The route as written in the manifest (after the base path), e.g. `/api/:id/...`.
    pub raw: String,
    pub component: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// The result of matching a request path.
#[derive(Debug, Clone)]
pub struct RouteMatch<'a> {
    pub route: &'a RouteEntry,
    pub params: Vec<(String, String)>,
    /// The part of the path matched by a trailing `/...` (empty for exact routes).
    pub path_info: String,
}

#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<RouteEntry>,
    base: String,
}

/// Splits a path into segments as Spin 3.5's router does (checked against it): slashes at
/// either end are dropped, empty segments inside count (`/items//parts/7` has an empty
/// `:id`; `/items/5//parts/7` has five segments).
fn split(path: &str) -> Vec<&str> {
    let trimmed = path.trim_matches('/');
    if trimmed.is_empty() {
        Vec::new()
    } else {
        trimmed.split('/').collect()
    }
}

impl RouteEntry {
    fn parse(base: &str, raw: &str, component: &str) -> Self {
        let full = format!(
            "{}/{}",
            base.trim_end_matches('/'),
            raw.trim_start_matches('/')
        );
        let (body, wildcard) = match full.strip_suffix("/...") {
            Some(b) => (b.to_string(), true),
            None if full == "..." || full.ends_with("/...") => (String::new(), true),
            None => (full.clone(), false),
        };
        let segments = split(&body)
            .into_iter()
            .map(|s| match s.strip_prefix(':') {
                Some(n) => Segment::Param(n.to_string()),
                None => Segment::Literal(s.to_string()),
            })
            .collect();
        Self {
            raw: raw.to_string(),
            component: component.to_string(),
            segments,
            wildcard,
        }
    }

    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, literals, self.segments.len())
    }

    fn matches(&self, parts: &[&str]) -> Option<(Vec<(String, String)>, String)> {
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (seg, part) in self.segments.iter().zip(parts) {
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(n) => params.push((n.clone(), (*part).to_string())),
            }
        }
        let rest = &parts[self.segments.len()..];
        let info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some((params, info))
    }

    /// The route without its trailing wildcard (`spin-component-route`).
    pub fn component_route(&self) -> String {
        self.raw
            .strip_suffix("/...")
            .map(str::to_string)
            .unwrap_or_else(|| self.raw.clone())
    }
}

impl Router {
    /// `routes` are (route as written, component id) in manifest order.
    pub fn new(base: &str, routes: &[(String, String)]) -> Self {
        let mut entries: Vec<RouteEntry> = routes
            .iter()
            .map(|(r, c)| RouteEntry::parse(base, r, c))
            .collect();
        // Stable sort keeps manifest order among equally specific routes.
        entries.sort_by_key(|r| std::cmp::Reverse(r.specificity()));
        Self {
            routes: entries,
            base: base.to_string(),
        }
    }

    pub fn routes(&self) -> &[RouteEntry] {
        &self.routes
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn route(&self, path: &str) -> Option<RouteMatch<'_>> {
        let parts = split(path);
        self.routes.iter().find_map(|route| {
            route.matches(&parts).map(|(params, path_info)| RouteMatch {
                route,
                params,
                path_info,
            })
        })
    }
}

/// The `spin-*` headers Spin adds to every incoming request.
pub fn spin_headers(
    m: &RouteMatch<'_>,
    base: &str,
    full_url: &str,
    client_addr: &str,
) -> HashMap<String, String> {
    let mut h = HashMap::new();
    h.insert("spin-full-url".into(), full_url.to_string());
    h.insert("spin-path-info".into(), m.path_info.clone());
    h.insert("spin-matched-route".into(), m.route.raw.clone());
    h.insert("spin-raw-component-route".into(), m.route.raw.clone());
    h.insert("spin-component-route".into(), m.route.component_route());
    h.insert("spin-base-path".into(), base.to_string());
    h.insert("spin-client-addr".into(), client_addr.to_string());
    for (k, v) in &m.params {
        h.insert(
            format!("spin-path-match-{}", k.to_ascii_lowercase()),
            v.clone(),
        );
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let r = |a: &str, b: &str| (a.to_string(), b.to_string());
        Router::new(
            "/",
            &[
                r("/...", "fallback"),
                r("/api/...", "api"),
                r("/api/items/:id", "item"),
                r("/api/items/special", "special"),
                r("/exact", "exact"),
            ],
        )
    }

    #[test]
    fn most_specific_wins() {
        let r = router();
        assert_eq!(r.route("/exact").unwrap().route.component, "exact");
        assert_eq!(r.route("/exact/x").unwrap().route.component, "fallback");
        assert_eq!(
            r.route("/api/items/special").unwrap().route.component,
            "special"
        );
        let m = r.route("/api/items/42").unwrap();
        assert_eq!(m.route.component, "item");
        assert_eq!(m.params, vec![("id".to_string(), "42".to_string())]);
        let m = r.route("/api/a/b").unwrap();
        assert_eq!(m.route.component, "api");
        assert_eq!(m.path_info, "/a/b");
        assert_eq!(r.route("/api").unwrap().route.component, "api");
        assert_eq!(r.route("/").unwrap().route.component, "fallback");
    }
}
