//! The loaded application: manifest + compiled, pre-instantiated components.
//!
//! Decision: all validation happens in `App::load` (manifest, variables, outbound patterns,
//! imports via `instantiate_pre`), so a misconfigured app fails at start with a message naming
//! the field or interface; serving and cron firing afterwards only instantiate and call.

use crate::bindings::SpinImports;
use crate::bindings::cron::{SpinCronPre, fermyon::spin_cron::cron_types};
use crate::cron::Schedule;
use crate::key_value::KvBackend;
use crate::limits::{Limits, within_deadline};
use crate::manifest::{ComponentDecl, Manifest, Route};
use crate::outbound_http::AllowedHosts;
use crate::postgres::PgPool;
use crate::routing::Router;
use crate::runtime_config::RuntimeConfig;
use crate::sqlite::SqliteDatabases;
use crate::state::{ComponentCtx, HostState, Shared};
use crate::variables::{AppVariables, component_variables};
use anyhow::{Context, Result, anyhow, bail};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasSelf, Linker};
use wasmtime::{Engine, Store};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

/// Options for [`App::load`].
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    /// State directory (SQLite files, key-value file, compile cache). Default: `<manifest dir>/.spin`.
    pub state_dir: Option<PathBuf>,
    /// `--variable name=value` overrides (win over environment and defaults).
    pub variables: Vec<(String, String)>,
    /// Environment used for `SPIN_VARIABLE_*` lookups; `None` = the process environment.
    pub env: Option<HashMap<String, String>>,
    /// Compile cache directory. Default: `<state dir>/cache`.
    pub cache_dir: Option<PathBuf>,
    /// Spin runtime config file (`--runtime-config-file`): stores and variables providers.
    pub runtime_config: Option<PathBuf>,
    /// Timeouts and concurrency bounds (`crate::limits`).
    pub limits: Limits,
}

/// One `[[trigger.cron]]` entry.
pub(crate) struct CronEntry {
    pub component: String,
    pub expression: String,
    pub schedule: Schedule,
}

pub(crate) struct AppInner {
    pub engine: Engine,
    pub router: Router,
    pub http: HashMap<String, ProxyPre<HostState>>,
    pub cron: Vec<CronEntry>,
    pub cron_pre: HashMap<String, SpinCronPre<HostState>>,
    pub ctxs: HashMap<String, Arc<ComponentCtx>>,
    pub state_dir: PathBuf,
    pub name: String,
    pub limits: Limits,
}

/// A loaded Spin application, cheap to clone.
#[derive(Clone)]
pub struct App {
    pub(crate) inner: Arc<AppInner>,
}

/// Converts wasmtime's error type into anyhow, keeping the message chain.
pub(crate) fn wt<T>(r: wasmtime::Result<T>) -> Result<T> {
    r.map_err(anyhow::Error::from)
}

fn build_linker(engine: &Engine) -> Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wt(wasmtime_wasi::p2::add_to_linker_async(&mut linker))?;
    wt(wasmtime_wasi_http::p2::add_only_http_to_linker_async(
        &mut linker,
    ))?;
    wt(SpinImports::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    ))?;
    wt(cron_types::add_to_linker::<HostState, HasSelf<HostState>>(
        &mut linker,
        |s| s,
    ))?;
    Ok(linker)
}

impl cron_types::Host for HostState {}

impl App {
    /// Loads and validates `manifest_path`, compiles (or loads from cache) and pre-instantiates
    /// every component a trigger uses.
    pub fn load(manifest_path: impl AsRef<Path>, options: AppOptions) -> Result<App> {
        let manifest_path = manifest_path.as_ref();
        let manifest = Manifest::load(manifest_path)?;
        let runtime_config = match &options.runtime_config {
            Some(path) => RuntimeConfig::load(path)?,
            None => RuntimeConfig::default(),
        };
        let env = options.env.clone();
        // Spin's default provider also reads `.env` in the working directory; an explicit
        // environment (tests) stands for the whole outside world, so it reads no file.
        let default_dotenv = match &env {
            Some(_) => Default::default(),
            None => crate::runtime_config::read_dotenv(Path::new(".env"))?,
        };
        let vars = AppVariables::resolve(
            &manifest,
            |k| match &env {
                Some(m) => m.get(k).cloned(),
                None => std::env::var(k).ok(),
            },
            &runtime_config.variables_providers,
            default_dotenv,
            &options.variables,
        )?;
        let state_dir = options
            .state_dir
            .clone()
            .unwrap_or_else(|| manifest.dir.join(".spin"));
        std::fs::create_dir_all(&state_dir)
            .with_context(|| format!("creating state dir {}", state_dir.display()))?;

        let raw = &manifest.raw;
        let uses = |labels: fn(&ComponentDecl) -> &Vec<String>| {
            raw.component
                .iter()
                .flat_map(move |(id, c)| labels(c).iter().map(move |l| (id.as_str(), l.as_str())))
        };
        let shared = Arc::new(Shared {
            sqlite: SqliteDatabases::new(
                &state_dir,
                &runtime_config.sqlite_databases,
                uses(|c| &c.sqlite_databases),
            )?,
            kv: KvBackend::create(
                &state_dir,
                &runtime_config.key_value_stores,
                uses(|c| &c.key_value_stores),
            )?,
            pg: PgPool::new(options.limits.pg_max_open, options.limits.pg_wait),
        });

        // Components used by some trigger, in manifest order.
        let mut used: Vec<&str> = Vec::new();
        for c in raw
            .trigger
            .http
            .iter()
            .map(|t| t.component.as_str())
            .chain(raw.trigger.cron.iter().map(|t| t.component.as_str()))
        {
            if !used.contains(&c) {
                used.push(c);
            }
        }

        // Every component's grants and templates are checked, used by a trigger or not, as
        // Spin does.
        let mut ctxs = HashMap::new();
        for (id, decl) in &raw.component {
            let ctx = (|| -> Result<ComponentCtx> {
                let hosts: Vec<String> = decl
                    .allowed_outbound_hosts
                    .iter()
                    .map(|h| vars.expand(h))
                    .collect::<Result<_>>()
                    .context("allowed_outbound_hosts")?;
                Ok(ComponentCtx {
                    id: id.to_string(),
                    variables: component_variables(&vars, &decl.variables)?,
                    environment: decl
                        .environment
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    sqlite_databases: decl.sqlite_databases.iter().cloned().collect(),
                    key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                    allowed_hosts: Arc::new(AllowedHosts::parse(&hosts)?),
                    shared: shared.clone(),
                })
            })()
            .with_context(|| format!("component.{id}"))?;
            ctxs.insert(id.to_string(), Arc::new(ctx));
        }

        let engine = crate::engine::new_engine(options.limits.max_instances)?;
        let linker = build_linker(&engine)?;
        let cache_dir = options
            .cache_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("cache"));
        let http_ids: BTreeSet<&str> = raw
            .trigger
            .http
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let cron_ids: BTreeSet<&str> = raw
            .trigger
            .cron
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        let mut http = HashMap::new();
        let mut cron_pre = HashMap::new();
        for id in &used {
            let decl = &raw.component[*id];
            let path = manifest.source_path(decl);
            let component = crate::engine::load_component(&engine, &path, &cache_dir)
                .with_context(|| format!("component.{id}.source"))?;
            let pre = wt(linker.instantiate_pre(&component)).with_context(|| {
                format!("component `{id}` ({}): unsupported import", path.display())
            })?;
            if http_ids.contains(id) {
                let proxy = wt(ProxyPre::new(pre.clone())).with_context(|| {
                    format!("component `{id}` does not export wasi:http/incoming-handler@0.2.x")
                })?;
                http.insert(id.to_string(), proxy);
            }
            if cron_ids.contains(id) {
                let p = wt(SpinCronPre::new(pre)).with_context(|| {
                    format!(
                        "component `{id}` does not export fermyon:spin-cron@2.0.0 handle-cron-event"
                    )
                })?;
                cron_pre.insert(id.to_string(), p);
            }
        }

        let routes: Vec<(String, String)> = raw
            .trigger
            .http
            .iter()
            .filter_map(|t| match &t.route {
                Route::Path(p) => Some((p.clone(), t.component.clone())),
                Route::Private { .. } => None,
            })
            .collect();
        let router = Router::new(&manifest.http_base(), &routes);
        let cron = raw
            .trigger
            .cron
            .iter()
            .map(|t| {
                Ok(CronEntry {
                    component: t.component.clone(),
                    expression: t.cron_expression.clone(),
                    schedule: Schedule::parse(&t.cron_expression)?,
                })
            })
            .collect::<Result<_>>()?;

        Ok(App {
            inner: Arc::new(AppInner {
                engine,
                router,
                http,
                cron,
                cron_pre,
                ctxs,
                state_dir,
                name: raw.application.name.clone(),
                limits: options.limits,
            }),
        })
    }

    /// The application name from `[application]`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The state directory in use.
    pub fn state_dir(&self) -> &Path {
        &self.inner.state_dir
    }

    /// `(route as written, component id)` in matching priority order.
    pub fn routes(&self) -> Vec<(String, String)> {
        self.inner
            .router
            .routes()
            .iter()
            .map(|r| (r.raw.clone(), r.component.clone()))
            .collect()
    }

    /// `(component id, cron expression)` for every `[[trigger.cron]]`.
    pub fn cron_triggers(&self) -> Vec<(String, String)> {
        self.inner
            .cron
            .iter()
            .map(|c| (c.component.clone(), c.expression.clone()))
            .collect()
    }

    pub(crate) fn new_store(&self, component: &str) -> Result<Store<HostState>> {
        let ctx = self
            .inner
            .ctxs
            .get(component)
            .ok_or_else(|| anyhow!("unknown component `{component}`"))?;
        let mut store = Store::new(&self.inner.engine, HostState::new(ctx.clone()));
        // Past the deadline the guest traps at its next epoch check (`crate::limits`).
        store.set_epoch_deadline(self.inner.limits.deadline_ticks());
        store.epoch_deadline_trap();
        Ok(store)
    }

    /// Invokes a cron component's `handle-cron-event` now (fresh instance).
    pub async fn fire_cron(&self, component: &str) -> Result<()> {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        self.fire_cron_at(component, now).await
    }

    pub(crate) async fn fire_cron_at(&self, component: &str, timestamp: u64) -> Result<()> {
        let Some(pre) = self.inner.cron_pre.get(component) else {
            bail!("component `{component}` is not on a [[trigger.cron]]");
        };
        let mut store = self.new_store(component)?;
        let event = async {
            let instance = wt(pre.instantiate_async(&mut store).await)?;
            let metadata = cron_types::Metadata { timestamp };
            wt(instance.call_handle_cron_event(&mut store, metadata).await)
        };
        match within_deadline(self.inner.limits.request_deadline, event)
            .await
            .with_context(|| format!("cron component `{component}` trapped"))?
        {
            Ok(()) => Ok(()),
            Err(cron_types::Error::Other(msg)) => {
                bail!("cron component `{component}` returned an error: {msg}")
            }
        }
    }

    /// Fires cron triggers on their schedules until `shutdown` resolves.
    pub(crate) async fn run_cron(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        if self.inner.cron.is_empty() {
            return;
        }
        loop {
            let now = chrono::Utc::now();
            let next_ms = 1000 - (now.timestamp_subsec_millis() as u64 % 1000);
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(next_ms)) => {}
                _ = shutdown.changed() => return,
            }
            let t = chrono::Utc::now();
            // Round to the second we woke up for (sleep may overshoot by a few ms).
            let second = t.timestamp();
            let Some(tick) = chrono::DateTime::from_timestamp(second, 0) else {
                continue;
            };
            for entry in &self.inner.cron {
                if entry.schedule.matches(tick) {
                    let app = self.clone();
                    let component = entry.component.clone();
                    tokio::spawn(async move {
                        let start = Instant::now();
                        let result = app.fire_cron_at(&component, second.max(0) as u64).await;
                        let ms = start.elapsed().as_millis();
                        match result {
                            Ok(()) => println!("CRON {component} ok {ms}ms"),
                            Err(e) => println!("CRON {component} failed {ms}ms: {e:#}"),
                        }
                    });
                }
            }
        }
    }
}
