//! Many issuers at once: providers by issuer, their status, refreshing them together.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::ProviderConfig;
use crate::error::{ConfigError, FetchError};
use crate::provider::{BackgroundRefresh, Provider, ProviderStatus};

/// The providers of a multi-tenant service, keyed by issuer. Cheap to clone (clones share
/// the providers).
///
/// ```no_run
/// # fn demo() -> Result<(), jwks_cache::ConfigError> {
/// use jwks_cache::{ProviderConfig, Registry};
///
/// let registry = Registry::new();
/// registry.add(ProviderConfig::new("https://a.example.com", "https://a.example.com/jwks"))?;
/// registry.add(ProviderConfig::new("https://b.example.com", "https://b.example.com/.well-known/jwks.json"))?;
/// for status in registry.statuses() {
///     println!("{} {:?} {} keys", status.issuer, status.state, status.key_count);
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    providers: Arc<RwLock<BTreeMap<String, Provider>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a provider from `config` and registers it under its issuer.
    pub fn add(&self, config: ProviderConfig) -> Result<Provider, ConfigError> {
        if self.get(&config.issuer).is_some() {
            return Err(ConfigError::DuplicateIssuer { issuer: config.issuer });
        }
        let provider = Provider::new(config)?;
        self.insert(provider.clone())?;
        Ok(provider)
    }

    /// Registers an existing provider under its issuer.
    pub fn insert(&self, provider: Provider) -> Result<(), ConfigError> {
        let mut providers = self.providers.write().unwrap_or_else(PoisonError::into_inner);
        if providers.contains_key(provider.issuer()) {
            return Err(ConfigError::DuplicateIssuer { issuer: provider.issuer().to_owned() });
        }
        providers.insert(provider.issuer().to_owned(), provider);
        Ok(())
    }

    /// The provider of `issuer`.
    pub fn get(&self, issuer: &str) -> Option<Provider> {
        self.providers.read().unwrap_or_else(PoisonError::into_inner).get(issuer).cloned()
    }

    /// Unregisters `issuer`, returning its provider.
    pub fn remove(&self, issuer: &str) -> Option<Provider> {
        self.providers.write().unwrap_or_else(PoisonError::into_inner).remove(issuer)
    }

    /// The registered issuers, sorted.
    pub fn issuers(&self) -> Vec<String> {
        self.providers.read().unwrap_or_else(PoisonError::into_inner).keys().cloned().collect()
    }

    fn all(&self) -> Vec<Provider> {
        self.providers.read().unwrap_or_else(PoisonError::into_inner).values().cloned().collect()
    }

    /// A status report per provider, sorted by issuer.
    pub fn statuses(&self) -> Vec<ProviderStatus> {
        self.all().iter().map(Provider::status).collect()
    }

    /// Refreshes every provider concurrently; one result per issuer, sorted by issuer.
    pub async fn refresh_all(&self) -> Vec<(String, Result<(), FetchError>)> {
        let providers = self.all();
        futures_util::future::join_all(
            providers.iter().map(|p| async move { (p.issuer().to_owned(), p.refresh().await.map(|_| ())) }),
        )
        .await
    }

    /// Starts the background refresher of every provider registered now. Dropping the
    /// returned handles stops them.
    pub fn spawn_background_refresh(&self) -> Vec<BackgroundRefresh> {
        self.all().iter().map(Provider::spawn_background_refresh).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrustRoots;

    fn config(issuer: &str) -> ProviderConfig {
        let mut c = ProviderConfig::new(issuer, "https://issuer.test/jwks");
        c.trust = TrustRoots::from_pem(include_bytes!("test-anchor.pem"), "test").unwrap();
        c
    }

    #[test]
    fn one_provider_per_issuer() {
        let registry = Registry::new();
        registry.add(config("https://b")).unwrap();
        registry.add(config("https://a")).unwrap();
        assert!(matches!(registry.add(config("https://a")), Err(ConfigError::DuplicateIssuer { .. })));
        assert_eq!(registry.issuers(), ["https://a", "https://b"]);
        let statuses = registry.statuses();
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[0].state, crate::CacheState::Empty);
        assert!(registry.remove("https://a").is_some());
        assert!(registry.get("https://a").is_none());
        assert!(registry.get("https://b").is_some());
    }
}
