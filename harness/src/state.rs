//! Per-component configuration and per-instance store data.
//!
//! Decision: everything a component is granted (databases, stores, hosts, variables, env) is
//! resolved once into an immutable `ComponentCtx` shared by all its instances; each request gets
//! a fresh `HostState` (WASI context, resource table) so instances never share guest state.

use crate::key_value::KvBackend;
use crate::outbound_http::{AllowedHosts, OutboundHooks};
use crate::postgres::PgPool;
use crate::sqlite::SqliteDatabases;
use crate::stdio::PrefixedStdio;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Host resources shared by all components of one app.
pub struct Shared {
    pub sqlite: SqliteDatabases,
    pub kv: KvBackend,
    pub pg: PgPool,
}

/// What one component may use, resolved from the manifest at start.
pub struct ComponentCtx {
    pub id: String,
    pub variables: BTreeMap<String, String>,
    pub environment: Vec<(String, String)>,
    pub sqlite_databases: HashSet<String>,
    pub key_value_stores: HashSet<String>,
    pub allowed_hosts: Arc<AllowedHosts>,
    pub shared: Arc<Shared>,
}

/// The `T` of every `Store<T>`: one per request or cron invocation.
pub struct HostState {
    pub ctx: Arc<ComponentCtx>,
    pub table: ResourceTable,
    pub wasi: WasiCtx,
    pub http: WasiHttpCtx,
    pub hooks: OutboundHooks,
}

impl HostState {
    pub fn new(ctx: Arc<ComponentCtx>) -> Self {
        let mut builder = WasiCtx::builder();
        builder
            .stdout(PrefixedStdio::new(&ctx.id, false))
            .stderr(PrefixedStdio::new(&ctx.id, true))
            .envs(&ctx.environment);
        Self {
            hooks: OutboundHooks::new(ctx.allowed_hosts.clone()),
            table: ResourceTable::new(),
            wasi: builder.build(),
            http: WasiHttpCtx::new(),
            ctx,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}
