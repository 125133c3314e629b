//! Test support (feature `testing`): a database holding the Go original's final schema
//! (`tests/fixtures/go-schema.sql`), for the importer's tests. Dropped by [`GoDatabase::drop_now`],
//! or when the value goes away (a failing test included).

use serde_json::Value;
use sqlx::PgPool;

use super::admin_dsn;

pub struct GoDatabase {
    pub name: String,
    pub dsn: String,
    pub pool: PgPool,
    dropped: bool,
}

impl GoDatabase {
    pub async fn create() -> Self {
        let name = format!("carapulse_go_{}", uuid::Uuid::new_v4().simple());
        let admin = PgPool::connect(&admin_dsn())
            .await
            .expect("admin connection");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .expect("create the Go database");
        let mut url = url::Url::parse(&admin_dsn()).expect("admin DSN");
        url.set_path(&name);
        let pool = PgPool::connect(url.as_str()).await.expect("Go database");
        sqlx::raw_sql(include_str!("../tests/fixtures/go-schema.sql"))
            .execute(&pool)
            .await
            .expect("the Go schema applies");
        Self {
            name,
            dsn: url.to_string(),
            pool,
            dropped: false,
        }
    }

    /// Runs `sql`; strings and NULL are bound as text (the SQL casts them), the rest as jsonb.
    pub async fn exec(&self, sql: &str, binds: &[Value]) {
        let mut q = sqlx::query(sql);
        for b in binds {
            q = match b {
                Value::String(s) => q.bind(s.clone()),
                Value::Null => q.bind(None::<String>),
                other => q.bind(other.clone()),
            };
        }
        q.execute(&self.pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    pub async fn drop_now(mut self) {
        self.dropped = true;
        self.pool.close().await;
        let admin = PgPool::connect(&admin_dsn())
            .await
            .expect("admin connection");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&admin)
        .await
        .expect("drop the Go database");
    }
}

impl Drop for GoDatabase {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        super::drop_database_blocking(self.name.clone());
    }
}
