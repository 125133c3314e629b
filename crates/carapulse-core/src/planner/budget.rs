//! A per-tenant budget of model calls, so one noisy tenant (or an alert storm) cannot spend
//! everyone's quota. A token bucket per tenant: `calls_per_hour` capacity, refilled evenly.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tenants tracked at most; the least recently used is forgotten beyond this.
const MAX_TENANTS: usize = 10_000;

/// The budget was spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "the tenant's llm call budget ({per_hour}/hour) is spent; next call in {retry_after_secs}s"
)]
pub struct BudgetExceeded {
    pub per_hour: u32,
    pub retry_after_secs: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// Per-tenant token buckets.
#[derive(Debug)]
pub struct CallBudget {
    per_hour: u32,
    buckets: Mutex<HashMap<String, Bucket>>,
}

impl CallBudget {
    /// `per_hour == 0` means unlimited.
    pub fn new(per_hour: u32) -> Self {
        Self {
            per_hour,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one call from the tenant's budget.
    pub fn try_take(&self, tenant: &str) -> Result<(), BudgetExceeded> {
        self.try_take_at(tenant, Instant::now())
    }

    fn try_take_at(&self, tenant: &str, now: Instant) -> Result<(), BudgetExceeded> {
        if self.per_hour == 0 {
            return Ok(());
        }
        let capacity = f64::from(self.per_hour);
        let per_sec = capacity / 3600.0;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TENANTS && !buckets.contains_key(tenant) {
            if let Some(oldest) = buckets
                .iter()
                .min_by_key(|(_, b)| b.updated)
                .map(|(k, _)| k.clone())
            {
                buckets.remove(&oldest);
            }
        }
        let bucket = buckets.entry(tenant.to_owned()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64((1.0 - bucket.tokens) / per_sec);
            Err(BudgetExceeded {
                per_hour: self.per_hour,
                retry_after_secs: wait.as_secs().max(1),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spends_refills_and_keeps_tenants_apart() {
        let budget = CallBudget::new(3);
        let t0 = Instant::now();
        for _ in 0..3 {
            budget.try_take_at("a", t0).unwrap();
        }
        let err = budget.try_take_at("a", t0).unwrap_err();
        assert_eq!(err.per_hour, 3);
        assert!((1100..=1200).contains(&err.retry_after_secs), "{err}");
        budget.try_take_at("b", t0).unwrap();
        // 20 minutes later one call is back.
        let later = t0 + Duration::from_secs(1201);
        budget.try_take_at("a", later).unwrap();
        assert!(budget.try_take_at("a", later).is_err());
        let unlimited = CallBudget::new(0);
        for _ in 0..1000 {
            unlimited.try_take("a").unwrap();
        }
    }
}
