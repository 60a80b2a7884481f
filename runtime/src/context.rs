//! What every request shares ([`Services`], built once at start-up) and what every
//! operation gets besides its parameters and body ([`Context`]).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::config::Config;
use super::metrics::Metrics;

/// What the runtime builds once at start-up and every request shares.
#[derive(Clone)]
pub struct Services {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    state: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
    #[cfg(feature = "provider")]
    upstream: Arc<super::upstream::Upstream>,
    #[cfg(feature = "store")]
    store: Arc<super::store::Store>,
    #[cfg(feature = "store")]
    instance: Arc<str>,
}

impl Services {
    /// Builds the provider client and opens the store, as the configuration says.
    pub async fn start(config: Config) -> Result<Self, String> {
        let metrics = Arc::new(Metrics::default());
        #[cfg(feature = "provider")]
        let upstream =
            super::upstream::Upstream::new(config.upstream.clone(), Arc::clone(&metrics))?;
        #[cfg(feature = "store")]
        let store = super::store::Store::open(&config.store).await?;
        Ok(Self {
            config: Arc::new(config),
            metrics,
            state: Arc::default(),
            #[cfg(feature = "provider")]
            upstream: Arc::new(upstream),
            #[cfg(feature = "store")]
            store: Arc::new(store),
            #[cfg(feature = "store")]
            instance: Arc::from(instance_id()),
        })
    }

    /// The configuration read at start-up, including the provider settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The connector's counters, served at `/metrics`.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The one `T` of this connector, created on first use and shared by every request
    /// from then on: caches, windows, clients of your own.
    pub fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut slots = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let slot = slots
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        match Arc::clone(slot).downcast::<T>() {
            Ok(state) => state,
            Err(_) => unreachable!("state slots are keyed by their type"),
        }
    }

    /// The provider's API client: base URL, authentication, retries and error classes as
    /// connector.yaml says.
    #[cfg(feature = "provider")]
    pub fn upstream(&self) -> &super::upstream::Upstream {
        &self.upstream
    }

    /// The record of payment initiations.
    #[cfg(feature = "store")]
    pub fn store(&self) -> &super::store::Store {
        &self.store
    }

    /// This process, as the owner of the initiations it works on.
    #[cfg(feature = "store")]
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

/// Unique among the processes sharing a store: host, process id and start time.
#[cfg(feature = "store")]
fn instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{host}/{}/{started:x}", std::process::id())
}

/// The id a request was given (its `X-Request-Id`, or a new one), carried in its
/// extensions from the tracing middleware to the operation.
#[derive(Debug, Clone)]
pub(crate) struct RequestId(pub(crate) Arc<str>);

/// What every operation gets besides its parameters and body.
#[derive(Clone)]
pub struct Context {
    services: Services,
    request_id: Arc<str>,
    #[cfg(feature = "store")]
    initiation: Option<Arc<super::initiation::Initiation>>,
}

impl Context {
    /// The context of request `request_id`.
    pub fn new(services: Services, request_id: Arc<str>) -> Self {
        Self {
            services,
            request_id,
            #[cfg(feature = "store")]
            initiation: None,
        }
    }

    /// The configuration read at start-up, including the provider settings.
    pub fn config(&self) -> &Config {
        self.services.config()
    }

    /// This request's id, as logged and returned in `X-Request-Id`.
    pub fn request_id(&self) -> &str {
        &self.request_id
    }

    /// The connector's counters, served at `/metrics`.
    pub fn metrics(&self) -> &Metrics {
        self.services.metrics()
    }

    /// What every request shares.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The connector's one `T`: see [`Services::state`].
    pub fn state<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.services.state()
    }

    /// The provider's API client: base URL, authentication, retries and error classes as
    /// connector.yaml says.
    #[cfg(feature = "provider")]
    pub fn upstream(&self) -> &super::upstream::Upstream {
        self.services.upstream()
    }

    /// The attempt this request makes, when it initiates a payment.
    #[cfg(feature = "store")]
    pub fn initiation(&self) -> Option<&super::initiation::Initiation> {
        self.initiation.as_deref()
    }

    #[cfg(feature = "store")]
    pub(crate) fn with_initiation(mut self, initiation: super::initiation::Initiation) -> Self {
        self.initiation = Some(Arc::new(initiation));
        self
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl<S> FromRequestParts<S> for Context
where
    Services: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map_or_else(|| Arc::from(""), |id| Arc::clone(&id.0));
        Ok(Context::new(Services::from_ref(state), request_id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::config::UpstreamSettings;
    use super::super::testing::block_on;
    use super::*;

    #[derive(Default)]
    struct Cache(Mutex<Vec<u32>>);

    #[test]
    fn each_state_type_has_one_value_shared_by_every_request() {
        let store = std::env::temp_dir().join(format!(
            "connector-runtime-state-{}.sqlite3",
            std::process::id()
        ));
        let store = store.display().to_string();
        let env = |name: &str| match name {
            "CONNECTOR_API_KEY" => Some("k".to_owned()),
            "CONNECTOR_STORE" => Some(store.clone()),
            _ => None,
        };
        let config = Config::from_lookup(&env, |_, _| {
            UpstreamSettings::new("http://127.0.0.1:9".to_owned())
        })
        .unwrap();
        let services = block_on(Services::start(config)).unwrap();
        let request = Context::new(services.clone(), Arc::from("r-1"));
        request.state::<Cache>().0.lock().unwrap().push(7);
        assert_eq!(*services.state::<Cache>().0.lock().unwrap(), [7]);
        assert!(services.state::<Mutex<String>>().lock().unwrap().is_empty());
        assert_eq!(request.request_id(), "r-1");
        assert_eq!(
            format!("{request:?}"),
            r#"Context { request_id: "r-1", .. }"#
        );
    }
}
