//! Every tool action Carapulse knows, grouped by family.

mod cloud;
mod kube;
mod observe;
mod scm;
mod work;

use std::sync::OnceLock;

use crate::model::ToolName;

use super::ActionSpec;

/// The whole catalogue, in a stable order.
pub fn catalogue() -> &'static [ActionSpec] {
    static ALL: OnceLock<Vec<ActionSpec>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(kube::actions());
        all.extend(cloud::actions());
        all.extend(scm::actions());
        all.extend(observe::actions());
        all.extend(work::actions());
        all
    })
}

/// The declaration of `tool`.`action`, if any.
pub fn find(tool: ToolName, action: &str) -> Option<&'static ActionSpec> {
    catalogue()
        .iter()
        .find(|s| s.tool == tool && s.action == action)
}

/// Builds an argv from fixed parts.
pub(super) fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| (*p).to_owned()).collect()
}

/// Appends `--flag=value` when the value is present.
pub(super) fn flag_eq(out: &mut Vec<String>, flag: &str, value: Option<impl std::fmt::Display>) {
    if let Some(v) = value {
        out.push(format!("{flag}={v}"));
    }
}
