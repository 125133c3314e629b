//! Rebuilds the crate when a migration is added or changed: `sqlx::migrate!` embeds the
//! `migrations/` directory at compile time and would otherwise miss new files.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
