//! A bounded cache of accepted identities, keyed by SHA-256 of the certificate DER, so that a
//! certificate's quote is verified once, not on every connection.
//!
//! Invariants: an entry is returned only while `not_before <= now <= not_after` of its
//! certificate (entries past `not_after` are dropped when seen); the cache never holds more than
//! its capacity: inserting into a full cache first drops expired entries, then the entry that
//! expires soonest. Only accepted certificates are cached, so a refusal is re-evaluated (with
//! the then-current time) on the next attempt.

use super::verify::AcceptedIdentity;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Default number of certificates remembered.
pub const DEFAULT_CACHE_CAPACITY: usize = 1024;

#[derive(Debug)]
struct Entry {
    identity: Arc<AcceptedIdentity>,
    not_before: i64,
    not_after: i64,
}

/// See the module documentation.
#[derive(Debug)]
pub struct IdentityCache {
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], Entry>>,
}

impl IdentityCache {
    /// A cache holding at most `capacity` entries (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        IdentityCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Entry>> {
        // Every update leaves the map consistent, so a poisoned lock is still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The identity accepted for the certificate with this SHA-256, if still valid at `now`.
    pub fn get(&self, cert_sha256: &[u8; 32], now: i64) -> Option<Arc<AcceptedIdentity>> {
        let mut entries = self.lock();
        let entry = entries.get(cert_sha256)?;
        if now > entry.not_after {
            entries.remove(cert_sha256);
            return None;
        }
        if now < entry.not_before {
            return None;
        }
        Some(entry.identity.clone())
    }

    /// Remembers an accepted identity until its certificate's `not_after`.
    pub fn insert(&self, cert_sha256: [u8; 32], identity: Arc<AcceptedIdentity>, now: i64) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= self.capacity && !entries.contains_key(&cert_sha256) {
            entries.retain(|_, e| e.not_after >= now);
            if entries.len() >= self.capacity {
                let soonest = entries
                    .iter()
                    .min_by_key(|(_, e)| e.not_after)
                    .map(|(k, _)| *k);
                if let Some(k) = soonest {
                    entries.remove(&k);
                }
            }
        }
        entries.insert(
            cert_sha256,
            Entry {
                not_before: identity.not_before,
                not_after: identity.not_after,
                identity,
            },
        );
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(not_before: i64, not_after: i64) -> Arc<AcceptedIdentity> {
        Arc::new(AcceptedIdentity {
            release: "r".into(),
            shape: "s".into(),
            config_sha256: [0; 32],
            model_sha256: [0; 32],
            mode: "production".into(),
            tcb_status: "UpToDate".into(),
            advisory_ids: vec![],
            simulated_root: false,
            config: serde_json::json!({}),
            cert_sha256: [0; 32],
            not_before,
            not_after,
        })
    }

    #[test]
    fn entries_expire_at_not_after() {
        let c = IdentityCache::new(4);
        c.insert([1; 32], identity(100, 200), 150);
        assert!(c.get(&[1; 32], 200).is_some());
        assert!(c.get(&[1; 32], 99).is_none());
        assert!(c.get(&[1; 32], 201).is_none());
        assert!(c.is_empty(), "expired entry is dropped when seen");
    }

    #[test]
    fn capacity_is_bounded_and_evicts_expired_then_soonest() {
        let c = IdentityCache::new(2);
        c.insert([1; 32], identity(0, 100), 50);
        c.insert([2; 32], identity(0, 300), 50);
        c.insert([3; 32], identity(0, 200), 150); // [1] has expired at 150: it goes
        assert_eq!(c.len(), 2);
        assert!(c.get(&[2; 32], 150).is_some());
        assert!(c.get(&[3; 32], 150).is_some());
        c.insert([4; 32], identity(0, 400), 150); // none expired: soonest ([3]) goes
        assert_eq!(c.len(), 2);
        assert!(c.get(&[3; 32], 150).is_none());
        assert!(c.get(&[2; 32], 150).is_some());
        let off = IdentityCache::new(0);
        off.insert([1; 32], identity(0, 100), 50);
        assert!(off.is_empty());
    }
}
