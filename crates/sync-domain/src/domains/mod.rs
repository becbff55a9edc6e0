//! Domains: the built-in record kinds and the registry an embedding service extends.
//!
//! A domain is a typed struct deriving `SyncableModel` and `Deserialize`; validation reads the
//! change's `data` into that struct (so types are checked with field paths) and then runs the
//! struct's own checks. Fields the struct does not list are kept as they are: the stored `data`
//! is always the object the device sent, never the struct re-serialised.

mod builtin;

use std::{collections::BTreeMap, fmt, marker::PhantomData, sync::Arc};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use sync_conflict::Policy;
use sync_model::{SyncableModel, ValidationErrors};
use sync_state_machine::Workflow;

pub use builtin::{Attendance, Comment, Journal, Location, Task, Ticket, VoiceNote, WorkOrder};

/// The largest `data` object a change may carry, serialised.
pub const MAX_DATA_BYTES: usize = 256 * 1024;

/// What the engine needs to know of a domain. Implemented for every `SyncableModel +
/// DeserializeOwned` type through [`DomainRegistry::register`]; implement it by hand only for a
/// domain whose data has no Rust type.
pub trait DomainSyncService: Send + Sync + 'static {
    fn name(&self) -> &str;
    /// The workflow the record's `status` follows, if any.
    fn workflow(&self) -> Option<&'static Workflow>;
    /// Fields conflict resolution must never move backwards.
    fn critical_fields(&self) -> &'static [&'static str];
    /// The conflict policy used when the tenant has not chosen one.
    fn default_policy(&self) -> Policy;
    /// Checks a change's `data` object, naming each bad field by its path (`data.title`).
    fn validate(&self, data: &Map<String, Value>) -> Result<(), ValidationErrors>;
}

/// The service of a typed domain struct.
struct Typed<T> {
    name: &'static str,
    policy: Policy,
    _type: PhantomData<fn() -> T>,
}

impl<T: SyncableModel + DeserializeOwned + 'static> DomainSyncService for Typed<T> {
    fn name(&self) -> &str {
        self.name
    }

    fn workflow(&self) -> Option<&'static Workflow> {
        T::WORKFLOW.and_then(sync_state_machine::workflow)
    }

    fn critical_fields(&self) -> &'static [&'static str] {
        T::CRITICAL_FIELDS
    }

    fn default_policy(&self) -> Policy {
        self.policy
    }

    fn validate(&self, data: &Map<String, Value>) -> Result<(), ValidationErrors> {
        let record: T = read_data(data)?;
        record.validate()
    }
}

/// Reads `data` into a domain struct (borrowing it, no copy), reporting a type error at the
/// path where it occurred.
pub fn read_data<T: DeserializeOwned>(data: &Map<String, Value>) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(data).map_err(|err| {
        let path = err.path().to_string();
        let message = err.inner().to_string();
        // serde reports a missing field at its parent; name the field itself.
        if let Some(field) = message.strip_prefix("missing field `").and_then(|m| m.strip_suffix('`')) {
            let parent = if path == "." { String::from("data") } else { format!("data.{path}") };
            return ValidationErrors::single(format!("{parent}.{field}"), "is required");
        }
        let path = if path == "." { String::from("data") } else { format!("data.{path}") };
        ValidationErrors::single(path, message)
    })
}

/// The domains a server knows, by name.
#[derive(Clone, Default)]
pub struct DomainRegistry {
    domains: BTreeMap<String, Arc<dyn DomainSyncService>>,
}

impl fmt::Debug for DomainRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.domains.keys()).finish()
    }
}

impl DomainRegistry {
    /// No domains at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The six built-in domains with the protocol's default policies.
    pub fn builtin() -> Self {
        let mut registry = Self::empty();
        registry.register::<Task>();
        registry.register::<Ticket>();
        registry.register::<Journal>();
        registry.register::<Attendance>();
        registry.register::<WorkOrder>();
        registry.register::<VoiceNote>();
        registry
    }

    /// Adds (or replaces) the domain of a typed struct, with the default policy that
    /// sync-conflict gives its name (`manual` for a name it does not know).
    pub fn register<T: SyncableModel + DeserializeOwned + 'static>(&mut self) -> &mut Self {
        self.register_with_policy::<T>(sync_conflict::default_policy(T::DOMAIN))
    }

    /// Adds (or replaces) the domain of a typed struct with its own default policy.
    pub fn register_with_policy<T: SyncableModel + DeserializeOwned + 'static>(
        &mut self,
        policy: Policy,
    ) -> &mut Self {
        self.register_service(Arc::new(Typed::<T> { name: T::DOMAIN, policy, _type: PhantomData }))
    }

    /// Adds (or replaces) a hand-written domain service.
    pub fn register_service(&mut self, service: Arc<dyn DomainSyncService>) -> &mut Self {
        self.domains.insert(service.name().to_owned(), service);
        self
    }

    pub fn get(&self, name: &str) -> Option<&Arc<dyn DomainSyncService>> {
        self.domains.get(name)
    }

    /// Domain names in alphabetical order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }
}
