//! spin.toml and openapi.yaml describe the same routes.
//!
//! Every HTTP route in spin.toml must serve at least one OpenAPI path and every OpenAPI
//! path must be served by a route. Spin's `:name` is OpenAPI's `{name}`; a trailing `/...`
//! wildcard serves every OpenAPI path below its prefix (e.g. `{relative_path}`, which spans
//! the rest of the URL). Also checks that the most specific route wins for each path and
//! that each component the routes name is declared with a source.

use std::collections::BTreeSet;

fn repo_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

struct Route {
    route: String,
    component: String,
}

fn spin_routes() -> (Vec<Route>, toml::Table) {
    let manifest: toml::Table = toml::from_str(&repo_file("spin.toml")).expect("spin.toml parses");
    let triggers = manifest["trigger"]["http"]
        .as_array()
        .expect("[[trigger.http]]");
    let routes = triggers
        .iter()
        .map(|t| Route {
            route: t["route"].as_str().expect("route").to_string(),
            component: t["component"].as_str().expect("component").to_string(),
        })
        .collect();
    (routes, manifest)
}

fn openapi_paths() -> BTreeSet<String> {
    let doc: serde_norway::Value =
        serde_norway::from_str(&repo_file("openapi.yaml")).expect("openapi.yaml parses");
    assert_eq!(doc["openapi"].as_str(), Some("3.1.0"));
    doc["paths"]
        .as_mapping()
        .expect("paths")
        .keys()
        .map(|k| k.as_str().expect("path key").to_string())
        .collect()
}

/// `/packages/:id/files/...` -> (`/packages/{id}/files`, wildcard = true).
fn to_openapi(route: &str) -> (String, bool) {
    let (base, wildcard) = match route.strip_suffix("/...") {
        Some(b) => (b, true),
        None => (route, false),
    };
    let converted = base
        .split('/')
        .map(|s| match s.strip_prefix(':') {
            Some(name) => format!("{{{name}}}"),
            None => s.to_string(),
        })
        .collect::<Vec<_>>()
        .join("/");
    (converted, wildcard)
}

/// How specifically `route` serves `path`: `None` = not at all; exact beats any wildcard,
/// a longer wildcard prefix beats a shorter one.
fn serves(route: &str, path: &str) -> Option<usize> {
    let (base, wildcard) = to_openapi(route);
    if !wildcard {
        return (base == path).then_some(usize::MAX);
    }
    let below = path.strip_prefix(&base)?;
    (below.starts_with('/') && below.len() > 1).then_some(base.len())
}

#[test]
fn every_route_is_documented_and_every_path_is_routed() {
    let (routes, _) = spin_routes();
    let paths = openapi_paths();
    for r in &routes {
        assert!(
            paths.iter().any(|p| serves(&r.route, p).is_some()),
            "spin route {} has no OpenAPI path",
            r.route
        );
    }
    for p in &paths {
        assert!(
            routes.iter().any(|r| serves(&r.route, p).is_some()),
            "OpenAPI path {p} has no spin route"
        );
    }
}

#[test]
fn most_specific_route_picks_the_intended_component() {
    let (routes, _) = spin_routes();
    let expect = |path: &str, component: &str| {
        let best = routes
            .iter()
            .filter_map(|r| serves(&r.route, path).map(|s| (s, r)))
            .max_by_key(|(s, _)| *s)
            .unwrap_or_else(|| panic!("{path} unrouted"));
        assert_eq!(best.1.component, component, "{path} -> {}", best.1.route);
    };
    expect("/health", "ops");
    expect("/packages", "packages");
    expect("/packages/{id}", "packages");
    expect("/packages/{id}/manifest", "packages");
    expect("/packages/{id}/files", "ingest");
    expect("/packages/{id}/files/{relative_path}", "ingest");
    expect("/packages/{id}/finalize", "ingest");
    expect(
        "/packages/{id}/retention/holds/{hold_id}/release",
        "retention",
    );
    expect("/files/{file_id}/download", "download");
    expect("/audit/verify", "audit");
    expect("/admin/sweeps", "admin");
    expect("/admin/scrub", "admin");
}

#[test]
fn routes_are_unique_and_components_declared() {
    let (routes, manifest) = spin_routes();
    let mut seen = BTreeSet::new();
    let components = manifest["component"].as_table().expect("[component.*]");
    for r in &routes {
        assert!(seen.insert(&r.route), "duplicate route {}", r.route);
        let c = components
            .get(&r.component)
            .unwrap_or_else(|| panic!("component {} not declared", r.component));
        assert_eq!(
            c["source"].as_str(),
            Some(format!("target/wasm32-wasip2/release/{}.wasm", r.component).as_str())
        );
    }
    assert!(components.contains_key("sweeper"));
}

#[test]
fn conversions() {
    assert_eq!(
        to_openapi("/packages/:id/files/..."),
        ("/packages/{id}/files".to_string(), true)
    );
    assert!(
        serves(
            "/packages/:id/files/...",
            "/packages/{id}/files/{relative_path}"
        )
        .is_some()
    );
    assert!(serves("/packages/:id/files/...", "/packages/{id}/files").is_none());
    assert!(serves("/packages/:id", "/packages/{id}/manifest").is_none());
}
