//! The regorus engine wrapper: load once, evaluate many times, never fail open.
//!
//! Two paths, one answer. When the package defines the aggregate `outputs` rule, each load
//! compiles it once to an RVM program (regorus's bytecode VM) and decisions run on a pool of VMs
//! loaded with it: about ten times faster than the tree-walking interpreter, which re-plans the
//! query and re-evaluates shared rules on every call. The interpreter stays for Rego unit tests,
//! the playground, and packages without `outputs`; a differential test runs a grid of inputs
//! through both and fails on any difference.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::Decision;

use super::PolicyInput;

/// Problems loading policy files. Evaluation problems never surface as errors: they deny.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read policy directory {path}: {source}")]
    ReadDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no .rego files found in {0}")]
    Empty(PathBuf),
    #[error("policy {file}: {message}")]
    Parse { file: String, message: String },
    #[error("policy package {0} is not defined by the loaded files")]
    MissingPackage(String),
}

/// The answer to one policy question.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyOutcome {
    pub decision: Decision,
    pub constraints: Map<String, Value>,
    pub ttl: u64,
    pub reasons: Vec<String>,
    /// Set when evaluation failed and the decision was forced to `deny`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PolicyOutcome {
    fn failed(message: String) -> Self {
        Self {
            decision: Decision::Deny,
            constraints: Map::new(),
            ttl: 0,
            reasons: vec!["policy_error".into()],
            error: Some(message),
        }
    }
}

/// Most idle prepared engines kept for reuse.
const POOL_SIZE: usize = 16;

/// Idle prepared evaluators (engines or VMs) kept for reuse, at most [`POOL_SIZE`]. A poisoned
/// lock is recovered: the vector holds no invariant a panic could break.
struct Pool<T>(std::sync::Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self(std::sync::Mutex::new(Vec::new()))
    }
}

impl<T> Pool<T> {
    fn take(&self) -> Option<T> {
        match self.0.lock() {
            Ok(mut idle) => idle.pop(),
            Err(poisoned) => poisoned.into_inner().pop(),
        }
    }

    fn give(&self, item: T) {
        let mut idle = match self.0.lock() {
            Ok(idle) => idle,
            Err(poisoned) => poisoned.into_inner(),
        };
        if idle.len() < POOL_SIZE {
            idle.push(item);
        }
    }
}

/// One rule that contributed to a decision (see [`PolicyEngine::explain_json`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleHit {
    /// The rule's name in the package (`approval_reasons`, `constraint_entries`, `decision`).
    pub rule: String,
    /// What it contributed: a reason, a `[key, value]` constraint entry, the decision.
    pub value: Value,
    /// `file:line` of the rule head that names it, when it is named literally.
    pub at: Option<String>,
}

/// A line of the sources that heads one of the explaining rules, kept to say where a hit comes
/// from without scanning the sources on every explanation.
#[derive(Debug, Clone)]
struct RuleHead {
    rule: String,
    /// `file:line`.
    at: String,
    text: String,
}

/// Every line of `sources` heading one of `rules`, in file and line order.
fn rule_heads(sources: &[(String, String)], rules: &[String]) -> Vec<RuleHead> {
    let mut heads = Vec::new();
    for (file, text) in sources {
        for (i, line) in text.lines().enumerate() {
            for rule in rules {
                let is_head = line
                    .strip_prefix(rule.as_str())
                    .is_some_and(|rest| rest.starts_with([' ', '[', '(', ':', '=']));
                if is_head {
                    heads.push(RuleHead {
                        rule: rule.clone(),
                        at: format!("{file}:{}", i + 1),
                        text: line.to_owned(),
                    });
                }
            }
        }
    }
    heads
}

/// The `*_reasons` rules heading a line of `sources`, then `constraint_entries` and `decision`.
fn explaining_rules(sources: &[(String, String)]) -> Vec<String> {
    let mut names: Vec<String> = sources
        .iter()
        .flat_map(|(_, text)| text.lines())
        .filter_map(|line| {
            let name: String = line
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let rest = &line[name.len()..];
            let is_head = rest.starts_with(" contains") || rest.starts_with(" :=");
            (is_head && name.ends_with("_reasons") && name != "output_reasons").then_some(name)
        })
        .collect();
    names.sort();
    names.dedup();
    names.extend(["constraint_entries".to_owned(), "decision".to_owned()]);
    names
}

/// A loaded set of Rego files for one package.
///
/// Evaluation reuses prepared engines from a small pool: a fresh clone pays regorus's preparation
/// on its first evaluation (measured ~0.3 ms), a reused one does not. Each evaluation sets its own
/// input, so nothing carries over between requests (the decision-table tests evaluate many
/// different inputs on reused engines).
pub struct PolicyEngine {
    template: regorus::Engine,
    pool: Pool<regorus::Engine>,
    /// The `outputs` rule compiled to RVM bytecode, when the package defines it.
    program: Option<std::sync::Arc<regorus::rvm::program::Program>>,
    vms: Pool<regorus::rvm::vm::RegoVM>,
    package: String,
    files: Vec<String>,
    /// The loaded text of each file, for operators to read back (`GET /v1/policy`).
    sources: Vec<(String, String)>,
    /// Rules that explain a decision (`*_reasons` sets, `constraint_entries`, `decision`),
    /// found in the sources once per load.
    explaining_rules: Vec<String>,
    /// Where each explaining rule is written (see [`RuleHead`]).
    rule_heads: Vec<RuleHead>,
    /// The program's entry point index of each explaining rule, found once per load; `None`
    /// when they are not all compiled (explanations then run on the interpreter).
    explaining_entries: Option<Vec<usize>>,
    /// The entry point of [`JUDGEMENT_RULE`]: `outputs` and every explaining rule in one VM
    /// run (what-if asks for both), when it compiled.
    judgement_entry: Option<usize>,
    /// See [`PolicyEngine::digest`].
    digest: String,
}

/// `sha256:<hex>` of a package and its `(file name, text)` pairs.
fn policy_digest(package: &str, sources: &[(String, String)]) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(package.as_bytes());
    for (name, text) in sources {
        hash.update([0u8]);
        hash.update(name.as_bytes());
        hash.update([0u8]);
        hash.update(text.as_bytes());
    }
    format!("sha256:{}", hex::encode(hash.finalize()))
}

/// A rule the engine adds to the compiled program only (never to the interpreter or the files
/// operators see): `{"outputs": outputs, "<explaining rule>": <its value>, ...}`, so one VM run
/// answers a decision and its explanation, sharing every rule they both use.
const JUDGEMENT_RULE: &str = "carapulse_judgement";

impl Clone for PolicyEngine {
    fn clone(&self) -> Self {
        Self {
            template: self.template.clone(),
            pool: Pool::default(),
            program: self.program.clone(),
            vms: Pool::default(),
            package: self.package.clone(),
            files: self.files.clone(),
            sources: self.sources.clone(),
            explaining_rules: self.explaining_rules.clone(),
            rule_heads: self.rule_heads.clone(),
            explaining_entries: self.explaining_entries.clone(),
            judgement_entry: self.judgement_entry,
            digest: self.digest.clone(),
        }
    }
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("package", &self.package)
            .field("files", &self.files)
            .field("compiled", &self.program.is_some())
            .finish()
    }
}

impl PolicyEngine {
    /// Loads every `*.rego` in `dir` (not `*_test.rego`) for `package`.
    pub fn load_dir(dir: &Path, package: &str) -> Result<Self, PolicyError> {
        Self::load_dir_inner(dir, package, false)
    }

    /// Loads every `*.rego` in `dir` including the `*_test.rego` files (for running Rego tests).
    pub fn load_dir_with_tests(dir: &Path, package: &str) -> Result<Self, PolicyError> {
        Self::load_dir_inner(dir, package, true)
    }

    fn load_dir_inner(dir: &Path, package: &str, tests: bool) -> Result<Self, PolicyError> {
        let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        let mut sources = Vec::new();
        for entry in entries {
            let path = entry
                .map_err(|source| PolicyError::ReadDir {
                    path: dir.to_owned(),
                    source,
                })?
                .path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with(".rego") || (!tests && name.ends_with("_test.rego")) {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::ReadDir {
                path: path.clone(),
                source,
            })?;
            sources.push((name.to_owned(), text));
        }
        sources.sort();
        if sources.is_empty() {
            return Err(PolicyError::Empty(dir.to_owned()));
        }
        Self::from_sources(package, sources)
    }

    /// Builds an engine from `(file name, text)` pairs.
    pub fn from_sources(
        package: &str,
        sources: Vec<(String, String)>,
    ) -> Result<Self, PolicyError> {
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(true);
        let mut files = Vec::new();
        for (name, text) in &sources {
            engine
                .add_policy(name.clone(), text.clone())
                .map_err(|err| PolicyError::Parse {
                    file: name.clone(),
                    message: err.to_string(),
                })?;
            files.push(name.clone());
        }
        let wanted = format!("data.{package}");
        let packages = engine.get_packages().map_err(|err| PolicyError::Parse {
            file: "(all)".into(),
            message: err.to_string(),
        })?;
        if !packages.iter().any(|p| p == &wanted) {
            return Err(PolicyError::MissingPackage(package.to_owned()));
        }
        let explaining_rules = explaining_rules(&sources);
        let program = compile_outputs(&engine, package, &explaining_rules);
        let rule_heads = rule_heads(&sources, &explaining_rules);
        let explaining_entries = program.as_deref().and_then(|program| {
            explaining_rules
                .iter()
                .map(|rule| {
                    program
                        .entry_points
                        .get_index_of(&format!("data.{package}.{rule}"))
                })
                .collect::<Option<Vec<usize>>>()
        });
        let judgement_entry = program.as_deref().and_then(|program| {
            program
                .entry_points
                .get_index_of(&format!("data.{package}.{JUDGEMENT_RULE}"))
        });
        let digest = policy_digest(package, &sources);
        Ok(Self {
            digest,
            template: engine,
            pool: Pool::default(),
            program,
            vms: Pool::default(),
            package: package.to_owned(),
            files,
            sources,
            explaining_rules,
            rule_heads,
            explaining_entries,
            judgement_entry,
        })
    }

    pub fn package(&self) -> &str {
        &self.package
    }

    pub fn files(&self) -> &[String] {
        &self.files
    }

    /// `(file name, text)` of every loaded file.
    pub fn sources(&self) -> &[(String, String)] {
        &self.sources
    }

    /// `sha256:<hex>` of the package and every loaded file (name and text): the same for the
    /// same policy wherever it was loaded. Planning records keep it, so a replay can say that
    /// policy changed since an incident was decided.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// The [`PolicyEngine::digest`] an engine loaded from `package` and `sources` would have,
    /// without compiling them (a cache key for compiled candidates).
    pub fn digest_of(package: &str, sources: &[(String, String)]) -> String {
        policy_digest(package, sources)
    }

    /// Evaluates a typed input.
    pub fn evaluate(&self, input: &PolicyInput) -> PolicyOutcome {
        match serde_json::to_value(input) {
            Ok(value) => self.evaluate_json(&value),
            Err(err) => PolicyOutcome::failed(format!("cannot encode policy input: {err}")),
        }
    }

    /// Evaluates a raw JSON input: on the compiled program when there is one, else on the
    /// interpreter.
    pub fn evaluate_json(&self, input: &Value) -> PolicyOutcome {
        let result = match &self.program {
            Some(program) => self.try_evaluate_compiled(program, input),
            None => self.try_evaluate(input),
        };
        result.unwrap_or_else(PolicyOutcome::failed)
    }

    /// Evaluates on the interpreter, whatever is compiled (the playground, and the differential
    /// test against the compiled path).
    pub fn evaluate_interpreted_json(&self, input: &Value) -> PolicyOutcome {
        self.try_evaluate(input)
            .unwrap_or_else(PolicyOutcome::failed)
    }

    /// A VM loaded with `program`: an idle one from the pool, else a new one.
    fn vm(
        &self,
        program: &std::sync::Arc<regorus::rvm::program::Program>,
    ) -> regorus::rvm::vm::RegoVM {
        self.vms.take().unwrap_or_else(|| {
            let mut vm = regorus::rvm::vm::RegoVM::new();
            vm.set_strict_builtin_errors(true);
            vm.load_program(program.clone());
            vm
        })
    }

    /// Whether decisions run on the compiled program.
    pub fn is_compiled(&self) -> bool {
        self.program.is_some()
    }

    fn try_evaluate_compiled(
        &self,
        program: &std::sync::Arc<regorus::rvm::program::Program>,
        input: &Value,
    ) -> Result<PolicyOutcome, String> {
        use serde::Deserialize;
        let input = regorus::Value::deserialize(input)
            .map_err(|err| format!("cannot load policy input: {err}"))?;
        let mut vm = self.vm(program);
        vm.set_input(input);
        let value = vm
            .execute_entry_point_by_index(0)
            .map_err(|err| format!("evaluating outputs: {err}"))?;
        // A VM that errored is dropped (above, by `?`) rather than reused.
        self.vms.give(vm);
        if value == regorus::Value::Undefined {
            return Err("outputs is undefined".into());
        }
        // Straight to a JSON value: no string in between.
        outcome_from_outputs(serde_json::to_value(&value).ok())
    }

    fn try_evaluate(&self, input: &Value) -> Result<PolicyOutcome, String> {
        let input = regorus::Value::from_json_str(&input.to_string())
            .map_err(|err| format!("cannot load policy input: {err}"))?;
        let mut engine = self.pool.take().unwrap_or_else(|| self.template.clone());
        engine.set_input(input);
        let outputs = self.outputs(&mut engine);
        // An engine that errored is dropped rather than reused.
        if outputs.is_ok() {
            self.pool.give(engine);
        }
        outcome_from(outputs?)
    }

    /// Why: the rules that produced the decision's reasons and constraints, evaluated on
    /// `input` on the interpreter — each reason attributed to the `*_reasons` set holding it, each constraint
    /// to `constraint_entries` — and where in the sources they are written (`file:line` of the
    /// first rule head of that set naming the reason, when it is named literally).
    ///
    /// Runs on the compiled program when it has every explaining rule as an entry point (each
    /// rule one VM run, ~10 µs), else on the interpreter (a query per rule, ~0.5 ms each); the
    /// differential test holds the two to the same answers.
    pub fn explain_json(&self, input: &Value) -> Result<Vec<RuleHit>, String> {
        match (&self.program, &self.explaining_entries) {
            (Some(program), Some(entries)) => self.explain_compiled(program, entries, input),
            _ => self.explain_interpreted_json(input),
        }
    }

    /// Whether a what-if judgement (decision and explanation) is one VM run.
    pub fn judges_in_one_run(&self) -> bool {
        self.program.is_some() && self.judgement_entry.is_some()
    }

    /// Whether explanations run on the compiled program.
    pub fn explains_compiled_path(&self) -> bool {
        self.program.is_some() && self.explaining_entries.is_some()
    }

    fn explain_compiled(
        &self,
        program: &std::sync::Arc<regorus::rvm::program::Program>,
        entries: &[usize],
        input: &Value,
    ) -> Result<Vec<RuleHit>, String> {
        use serde::Deserialize;
        let input = regorus::Value::deserialize(input)
            .map_err(|err| format!("cannot load policy input: {err}"))?;
        let mut vm = self.vm(program);
        vm.set_input(input);
        let mut values = Vec::with_capacity(self.explaining_rules.len());
        for (rule, &entry) in self.explaining_rules.iter().zip(entries) {
            // A VM that errored is dropped (returned early here) rather than reused.
            let value = vm
                .execute_entry_point_by_index(entry)
                .map_err(|err| format!("evaluating {rule}: {err}"))?;
            if value == regorus::Value::Undefined {
                continue;
            }
            let value =
                serde_json::to_value(&value).map_err(|err| format!("encoding {rule}: {err}"))?;
            values.push((rule, value));
        }
        self.vms.give(vm);
        Ok(self.hits(values))
    }

    /// A decision and its explanation together (what-if): one VM run of the judgement rule
    /// when it compiled and is defined for `input`, else [`Self::evaluate_json`] and
    /// [`Self::explain_json`]. The differential test holds both ways to the same answers.
    pub fn judge_json(&self, input: &Value) -> (PolicyOutcome, Result<Vec<RuleHit>, String>) {
        use serde::Deserialize;
        let on_vm = self.judge_on_vm(|| {
            regorus::Value::deserialize(input)
                .map_err(|err| format!("cannot load policy input: {err}"))
        });
        on_vm.unwrap_or_else(|| (self.evaluate_json(input), self.explain_json(input)))
    }

    /// [`Self::judge_json`] for an input already encoded as JSON text (what-if encodes each
    /// question once, as the key it remembers answers by): read straight into the VM's value,
    /// rather than building a `serde_json::Value` tree, converting it and dropping it — over a
    /// quarter of a compiled judgement's time in the profile. The differential test holds both
    /// to the same answers.
    pub fn judge_text(&self, input: &str) -> (PolicyOutcome, Result<Vec<RuleHit>, String>) {
        let on_vm = self.judge_on_vm(|| {
            regorus::Value::from_json_str(input)
                .map_err(|err| format!("cannot load policy input: {err}"))
        });
        if let Some(answer) = on_vm {
            return answer;
        }
        match serde_json::from_str::<Value>(input) {
            Ok(document) => (self.evaluate_json(&document), self.explain_json(&document)),
            Err(err) => {
                let err = format!("cannot load policy input: {err}");
                (PolicyOutcome::failed(err.clone()), Err(err))
            }
        }
    }

    /// The judgement rule's answer for the input `load` gives (a failure to load or run denies);
    /// `None` when the rule did not compile or is undefined for this input.
    #[allow(clippy::type_complexity)]
    fn judge_on_vm(
        &self,
        load: impl FnOnce() -> Result<regorus::Value, String>,
    ) -> Option<(PolicyOutcome, Result<Vec<RuleHit>, String>)> {
        let (Some(program), Some(entry)) = (&self.program, self.judgement_entry) else {
            return None;
        };
        match load().and_then(|input| self.judge_compiled(program, entry, input)) {
            Ok(answer) => answer,
            Err(err) => Some((PolicyOutcome::failed(err.clone()), Err(err))),
        }
    }

    /// `None` when the judgement is undefined for this input (a member rule is undefined).
    #[allow(clippy::type_complexity)]
    fn judge_compiled(
        &self,
        program: &std::sync::Arc<regorus::rvm::program::Program>,
        entry: usize,
        input: regorus::Value,
    ) -> Result<Option<(PolicyOutcome, Result<Vec<RuleHit>, String>)>, String> {
        let mut vm = self.vm(program);
        vm.set_input(input);
        let value = vm
            .execute_entry_point_by_index(entry)
            .map_err(|err| format!("evaluating {JUDGEMENT_RULE}: {err}"))?;
        self.vms.give(vm);
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        let Ok(Value::Object(mut members)) = serde_json::to_value(&value) else {
            return Err(format!("{JUDGEMENT_RULE} is not an object"));
        };
        let outcome =
            outcome_from_outputs(members.remove("outputs")).unwrap_or_else(PolicyOutcome::failed);
        let values: Vec<(&String, Value)> = self
            .explaining_rules
            .iter()
            .filter_map(|rule| members.remove(rule.as_str()).map(|v| (rule, v)))
            .collect();
        Ok(Some((outcome, Ok(self.hits(values)))))
    }

    /// [`Self::explain_json`] on the interpreter, whatever is compiled (the differential test).
    pub fn explain_interpreted_json(&self, input: &Value) -> Result<Vec<RuleHit>, String> {
        let input = regorus::Value::from_json_str(&input.to_string())
            .map_err(|err| format!("cannot load policy input: {err}"))?;
        // A prepared engine from the pool (a fresh clone pays regorus's preparation again).
        let mut engine = self.pool.take().unwrap_or_else(|| self.template.clone());
        engine.set_input(input);
        // Each contributing rule by its full path; an undefined rule contributed nothing.
        // (Evaluating the whole package document at once gave wrong answers in regorus 0.14.1
        // when the files came in some orders: rule by rule agrees with the decision path.)
        let mut values = Vec::with_capacity(self.explaining_rules.len());
        for rule in &self.explaining_rules {
            // An engine that errored is dropped rather than reused (returned early here).
            let results = engine
                .eval_query(format!("data.{}.{rule}", self.package), false)
                .map_err(|err| format!("evaluating {rule}: {err}"))?;
            let Some(value) = results
                .result
                .first()
                .and_then(|r| r.expressions.first())
                .map(|e| e.value.to_json_str())
                .transpose()
                .map_err(|err| format!("encoding {rule}: {err}"))?
                .and_then(|text| serde_json::from_str::<Value>(&text).ok())
            else {
                continue;
            };
            values.push((rule, value));
        }
        self.pool.give(engine);
        Ok(self.hits(values))
    }

    /// The hits of each explaining rule's value, attributed and located.
    fn hits<'r>(&self, values: impl IntoIterator<Item = (&'r String, Value)>) -> Vec<RuleHit> {
        let mut hits = Vec::new();
        for (rule, value) in values {
            if rule.ends_with("_reasons") {
                for reason in value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    hits.push(RuleHit {
                        rule: rule.clone(),
                        value: Value::String(reason.to_owned()),
                        at: self.locate(rule, Some(reason)),
                    });
                }
            } else if rule == "constraint_entries" {
                for entry in value.as_array().into_iter().flatten() {
                    hits.push(RuleHit {
                        rule: rule.clone(),
                        value: entry.clone(),
                        at: entry
                            .get(0)
                            .and_then(Value::as_str)
                            .and_then(|key| self.locate(rule, Some(key))),
                    });
                }
            } else {
                hits.push(RuleHit {
                    rule: rule.clone(),
                    at: value.as_str().and_then(|d| self.locate(rule, Some(d))),
                    value,
                });
            }
        }
        hits
    }

    /// `file:line` of the first head of `rule` whose line names `literal` (in quotes).
    fn locate(&self, rule: &str, literal: Option<&str>) -> Option<String> {
        let quoted = literal.map(|l| format!("\"{l}\""));
        self.rule_heads
            .iter()
            .find(|h| h.rule == rule && quoted.as_deref().is_none_or(|q| h.text.contains(q)))
            .map(|h| h.at.clone())
    }

    /// `decision`, `constraints`, `ttl`, `reasons`, each by its full path. One query fetches all
    /// four when they are all defined; otherwise each rule is evaluated alone.
    fn outputs(&self, engine: &mut regorus::Engine) -> Result<[Option<Value>; 4], String> {
        const NAMES: [&str; 4] = ["decision", "constraints", "ttl", "reasons"];
        let query = format!(
            "[{}]",
            NAMES
                .map(|n| format!("data.{}.{n}", self.package))
                .join(", ")
        );
        let results = engine
            .eval_query(query, false)
            .map_err(|err| format!("evaluating outputs: {err}"))?;
        let combined = results
            .result
            .first()
            .and_then(|r| r.expressions.first())
            .map(|e| e.value.clone());
        if let Some(value) = combined {
            let json = value
                .to_json_str()
                .map_err(|err| format!("encoding outputs: {err}"))?;
            if let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&json) {
                if items.len() == 4 {
                    let mut it = items.into_iter().map(Some);
                    return Ok([
                        it.next().flatten(),
                        it.next().flatten(),
                        it.next().flatten(),
                        it.next().flatten(),
                    ]);
                }
            }
            return Err("outputs query returned an unexpected shape".into());
        }
        Ok([
            self.rule(engine, NAMES[0])?,
            self.rule(engine, NAMES[1])?,
            self.rule(engine, NAMES[2])?,
            self.rule(engine, NAMES[3])?,
        ])
    }

    /// Evaluates `data.<package>.<name>`; `None` when the rule is undefined.
    fn rule(&self, engine: &mut regorus::Engine, name: &str) -> Result<Option<Value>, String> {
        let value = engine
            .eval_rule(format!("data.{}.{name}", self.package))
            .map_err(|err| format!("evaluating {name}: {err}"))?;
        if value == regorus::Value::Undefined {
            return Ok(None);
        }
        let json = value
            .to_json_str()
            .map_err(|err| format!("encoding {name}: {err}"))?;
        serde_json::from_str(&json)
            .map(Some)
            .map_err(|err| format!("decoding {name}: {err}"))
    }

    /// Runs every `test_*` rule of the loaded `*_test.rego` packages; returns (name, passed, error).
    pub fn run_rego_tests(
        &self,
        dir: &Path,
    ) -> Result<Vec<(String, bool, Option<String>)>, PolicyError> {
        let mut results = Vec::new();
        let entries = std::fs::read_dir(dir).map_err(|source| PolicyError::ReadDir {
            path: dir.to_owned(),
            source,
        })?;
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.ends_with("_test.rego") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|source| PolicyError::ReadDir {
                path: path.clone(),
                source,
            })?;
            let package = text
                .lines()
                .find_map(|l| l.trim().strip_prefix("package "))
                .map(str::trim)
                .ok_or_else(|| PolicyError::Parse {
                    file: name.to_owned(),
                    message: "no package line".into(),
                })?
                .to_owned();
            for line in text.lines() {
                let Some(rest) = line.strip_prefix("test_") else {
                    continue;
                };
                let rule: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                let rule = format!("test_{rule}");
                let mut engine = self.template.clone();
                let outcome = engine.eval_rule(format!("data.{package}.{rule}"));
                match outcome {
                    Ok(v) if v == regorus::Value::from(true) => results.push((rule, true, None)),
                    Ok(v) => results.push((rule, false, Some(format!("evaluated to {v}")))),
                    Err(err) => results.push((rule, false, Some(err.to_string()))),
                }
            }
        }
        Ok(results)
    }
}

/// The outcome from the value of the aggregate `outputs` rule (an object of the four outputs).
fn outcome_from_outputs(outputs: Option<Value>) -> Result<PolicyOutcome, String> {
    let Some(Value::Object(mut map)) = outputs else {
        return Err("outputs is not an object".into());
    };
    let mut take = |k: &str| map.remove(k).filter(|v| !v.is_null());
    outcome_from([
        take("decision"),
        take("constraints"),
        take("ttl"),
        take("reasons"),
    ])
}

/// The outcome from the four outputs (each `None` when undefined); a wrong shape is an error, so
/// the caller denies.
fn outcome_from(outputs: [Option<Value>; 4]) -> Result<PolicyOutcome, String> {
    let [decision, constraints, ttl, reasons] = outputs;
    let decision = match decision {
        Some(Value::String(s)) => Decision::parse(&s).map_err(|e| e.to_string())?,
        Some(other) => return Err(format!("decision is not a string: {other}")),
        None => return Err("decision is undefined".into()),
    };
    let constraints = match constraints {
        Some(Value::Object(map)) => map,
        None => Map::new(),
        Some(other) => return Err(format!("constraints is not an object: {other}")),
    };
    let ttl = match ttl {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        None => 0,
        Some(other) => return Err(format!("ttl is not a number: {other}")),
    };
    let reasons = match reasons {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    Ok(PolicyOutcome {
        decision,
        constraints,
        ttl,
        reasons,
        error: None,
    })
}

/// Compiles `data.<package>.outputs` to an RVM program; `None` when the package has no such rule
/// or it does not compile (decisions then run on the interpreter).
///
/// The rules that explain a decision (`explaining`) become further entry points of the same
/// program, so explanations run on the VM too; when they do not all compile, the program has
/// `outputs` alone and explanations stay on the interpreter.
fn compile_outputs(
    engine: &regorus::Engine,
    package: &str,
    explaining: &[String],
) -> Option<std::sync::Arc<regorus::rvm::program::Program>> {
    let entry = format!("data.{package}.outputs");
    let judgement = format!("data.{package}.{JUDGEMENT_RULE}");
    let explaining_paths: Vec<String> = explaining
        .iter()
        .map(|rule| format!("data.{package}.{rule}"))
        .collect();
    // First choice: the judgement rule as the root (it reaches `outputs` and every explaining
    // rule), with each of them also an entry point of its own.
    let members: Vec<String> = std::iter::once("\"outputs\": outputs".to_owned())
        .chain(explaining.iter().map(|rule| format!("\"{rule}\": {rule}")))
        .collect();
    let module = format!(
        "package {package}\n\nimport rego.v1\n\n{JUDGEMENT_RULE} := {{{}}}\n",
        members.join(", ")
    );
    let mut with_judgement = engine.clone();
    if with_judgement
        .add_policy(format!("{JUDGEMENT_RULE}.rego"), module)
        .is_ok()
    {
        if let Ok(compiled) =
            with_judgement.compile_with_entrypoint(&regorus::Rc::from(judgement.as_str()))
        {
            let mut entries: Vec<&str> = vec![&entry];
            entries.extend(explaining_paths.iter().map(String::as_str));
            entries.push(&judgement);
            match regorus::languages::rego::compiler::Compiler::compile_from_policy(
                &compiled, &entries,
            ) {
                Ok(program) => return Some(program),
                Err(err) => {
                    tracing::debug!(error = %err, "judgement rule not compiled; separate entry points");
                }
            }
        }
    }
    let mut engine = engine.clone();
    let compiled = match engine.compile_with_entrypoint(&regorus::Rc::from(entry.as_str())) {
        Ok(compiled) => compiled,
        Err(err) => {
            tracing::debug!(%entry, error = %err, "policy not compiled; using the interpreter");
            return None;
        }
    };
    let mut entries: Vec<&str> = vec![&entry];
    entries.extend(explaining_paths.iter().map(String::as_str));
    let compiler = regorus::languages::rego::compiler::Compiler::compile_from_policy;
    match compiler(&compiled, &entries) {
        Ok(program) => return Some(program),
        Err(err) => {
            tracing::debug!(error = %err, "explaining rules not compiled; explanations use the interpreter");
        }
    }
    match compiler(&compiled, &[&entry]) {
        Ok(program) => Some(program),
        Err(err) => {
            tracing::warn!(%entry, error = %err, "policy did not compile to RVM; using the interpreter");
            None
        }
    }
}
