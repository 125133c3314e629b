//! Test support (feature `testing`): a fresh, migrated Postgres database per test, dropped
//! afterwards, and a dev-mode config pointing at it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::store::Store;

/// The HS256 secret of test configs.
pub const TEST_JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123";

/// Admin DSN used to create and drop test databases (`CARAPULSE_TEST_PG`).
pub fn admin_dsn() -> String {
    std::env::var("CARAPULSE_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A uniquely named database that exists for the lifetime of this value.
#[derive(Debug)]
pub struct TestDatabase {
    pub name: String,
    pub dsn: String,
    pub store: Store,
    dropped: AtomicBool,
}

impl TestDatabase {
    /// Creates `carapulse_test_<uuid>` and runs the migrations.
    pub async fn create() -> Self {
        let name = format!("carapulse_test_{}", uuid::Uuid::new_v4().simple());
        let admin = admin_dsn();
        let admin_pool = sqlx::PgPool::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres at {admin}: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&admin_pool)
            .await
            .unwrap_or_else(|e| panic!("create database {name}: {e}"));
        admin_pool.close().await;
        let dsn = match admin.rfind('/') {
            Some(i) => format!("{}/{name}", &admin[..i]),
            None => panic!("admin DSN has no database path: {admin}"),
        };
        let mut storage = crate::config::StorageConfig {
            postgres_dsn: dsn.clone(),
            ..Default::default()
        };
        storage.max_open_conns = 40;
        storage.max_idle_conns = 0;
        let store = Store::connect_lazy(&storage).expect("test store");
        store.migrate().await.expect("migrations apply");
        Self {
            name,
            dsn,
            store,
            dropped: AtomicBool::new(false),
        }
    }

    /// A gateway-ready config: dev mode with [`TEST_JWT_SECRET`], listeners on port 0.
    pub fn config(&self) -> Config {
        let mut cfg = Config::default();
        cfg.storage.postgres_dsn = self.dsn.clone();
        cfg.storage.max_idle_conns = 0;
        cfg.gateway.http_addr = "127.0.0.1:0".into();
        // Tests that want the UI listener ask for it on port 0.
        cfg.gateway.ws_addr = None;
        cfg.gateway.dev_mode = true;
        cfg.gateway.dev_jwt_secret = Some(TEST_JWT_SECRET.into());
        cfg.policy.policy_dir = policies_dir();
        cfg
    }

    /// Drops the database now (also done on drop).
    pub async fn drop_now(&self) {
        if self.dropped.swap(true, Ordering::SeqCst) {
            return;
        }
        self.store.close().await;
        if let Ok(pool) = sqlx::PgPool::connect(&admin_dsn()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                self.name
            ))
            .execute(&pool)
            .await;
            pool.close().await;
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if self.dropped.load(Ordering::SeqCst) {
            return;
        }
        let name = self.name.clone();
        // Drop runs outside any async context guarantee: use a private runtime on a thread.
        let handle = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&admin_dsn()).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                            .execute(&pool)
                            .await;
                    pool.close().await;
                }
            });
        });
        let _ = handle.join();
    }
}

/// Absolute path of the repository's `policies/` directory.
pub fn policies_dir() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../policies").to_owned()
}
