//! The loaded policy and its reloads. Readers take a cheap snapshot (`current()`); a reload
//! compiles the whole directory first and swaps only when every file compiles and the package
//! is there, so a broken edit keeps the last good policy: never an empty or allow-all engine.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use carapulse_core::policy::{PolicyEngine, PolicyError};

/// What a successful reload installed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Reloaded {
    pub generation: u64,
    pub files: Vec<String>,
}

#[derive(Debug)]
struct Current {
    engine: Arc<PolicyEngine>,
    generation: u64,
}

/// The policy every request is decided with.
#[derive(Debug)]
pub struct LoadedPolicy {
    current: RwLock<Current>,
    dir: PathBuf,
    package: String,
}

impl LoadedPolicy {
    pub fn new(engine: PolicyEngine, dir: PathBuf, package: String) -> Self {
        Self {
            current: RwLock::new(Current {
                engine: Arc::new(engine),
                generation: 1,
            }),
            dir,
            package,
        }
    }

    /// The engine to decide with now (a reload during the request does not change it).
    pub fn current(&self) -> Arc<PolicyEngine> {
        match self.current.read() {
            Ok(c) => c.engine.clone(),
            Err(poisoned) => poisoned.into_inner().engine.clone(),
        }
    }

    /// How many policies have been installed, the first included.
    pub fn generation(&self) -> u64 {
        match self.current.read() {
            Ok(c) => c.generation,
            Err(poisoned) => poisoned.into_inner().generation,
        }
    }

    /// Loads the directory again; on any error the current policy stays in force.
    pub fn reload(&self) -> Result<Reloaded, PolicyError> {
        let engine = PolicyEngine::load_dir(&self.dir, &self.package)?;
        let files = engine.files().to_vec();
        let mut current = match self.current.write() {
            Ok(c) => c,
            Err(poisoned) => poisoned.into_inner(),
        };
        current.engine = Arc::new(engine);
        current.generation += 1;
        Ok(Reloaded {
            generation: current.generation,
            files,
        })
    }
}
