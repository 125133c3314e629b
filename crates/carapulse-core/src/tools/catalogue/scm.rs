//! git, github (gh) and gitlab (glab).

use serde_json::json;

use crate::model::{RiskLevel, ToolName};
use crate::tools::spec::seg;
use crate::tools::{
    ActionClass, ActionSpec, ApiRequest, FieldKind as K, FieldSpec as F, HttpMethod, ListOf,
};

use super::{argv, flag_eq};

const R: ActionClass = ActionClass::Read;
const W_LOW: ActionClass = ActionClass::Write(RiskLevel::Low);
const W_MED: ActionClass = ActionClass::Write(RiskLevel::Medium);

const TEXT: K = K::Text { max: 10_000 };
const REPO: F = F::opt("repo", K::Repo, "owner/name (default: the checkout's)");

pub(super) fn actions() -> Vec<ActionSpec> {
    vec![
        ActionSpec {
            tool: ToolName::Git,
            action: "status",
            description: "Working tree status",
            class: R,
            break_glass: false,
            fields: &[],
            cli: Some(|_| argv(&["git", "status", "--porcelain=v1"])),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "diff",
            description: "Diff summary",
            class: R,
            break_glass: false,
            fields: &[],
            cli: Some(|_| argv(&["git", "diff", "--stat"])),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "log",
            description: "Recent commits",
            class: R,
            break_glass: false,
            fields: const { &[F::opt("max_count", K::Int { min: 1, max: 1000 }, "commits")] },
            cli: Some(|i| {
                let mut a = argv(&["git", "log", "--oneline"]);
                flag_eq(
                    &mut a,
                    "--max-count",
                    Some(i.int("max_count").unwrap_or(20)),
                );
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "branch",
            description: "Create and switch to a branch",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("name", K::GitRef, "new branch"),
                    F::opt("base", K::GitRef, "start point"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "git",
                    "switch",
                    "--create",
                    i.str("name").unwrap_or_default(),
                ]);
                if let Some(base) = i.str("base") {
                    a.push(base.to_owned());
                }
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "add",
            description: "Stage paths",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[F::req(
                    "paths",
                    K::List(ListOf::Paths),
                    "paths inside the workspace",
                )]
            },
            cli: Some(|i| {
                let mut a = argv(&["git", "add", "--"]);
                a.extend(i.strings("paths").into_iter().map(str::to_owned));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "commit",
            description: "Commit staged changes",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("message", TEXT, "commit message"),
                    F::opt("all", K::Bool, "commit all tracked changes"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["git", "commit"]);
                if i.flag("all") {
                    a.push("--all".into());
                }
                flag_eq(&mut a, "--message", i.str("message"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "push",
            description: "Push a branch",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    F::opt("remote", K::Name, "default origin"),
                    F::req("branch", K::GitRef, "branch"),
                    F::opt("set_upstream", K::Bool, "track"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["git", "push"]);
                if i.flag("set_upstream") {
                    a.push("--set-upstream".into());
                }
                a.push(i.str("remote").unwrap_or("origin").to_owned());
                a.push(i.str("branch").unwrap_or_default().to_owned());
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Git,
            action: "fetch",
            description: "Fetch from a remote",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    F::opt("remote", K::Name, "default origin"),
                    F::opt("ref", K::GitRef, "ref"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["git", "fetch", i.str("remote").unwrap_or("origin")]);
                if let Some(r) = i.str("ref") {
                    a.push(r.to_owned());
                }
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Github,
            action: "pr-create",
            description: "Open a pull request",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    REPO,
                    F::req("title", K::Text { max: 256 }, "title"),
                    F::opt("body", TEXT, "description"),
                    F::req("base", K::GitRef, "target branch"),
                    F::req("head", K::GitRef, "source branch"),
                    F::opt("draft", K::Bool, "draft"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["gh", "pr", "create"]);
                flag_eq(&mut a, "--repo", i.str("repo"));
                flag_eq(&mut a, "--title", i.str("title"));
                flag_eq(&mut a, "--body", Some(i.str("body").unwrap_or("")));
                flag_eq(&mut a, "--base", i.str("base"));
                flag_eq(&mut a, "--head", i.str("head"));
                if i.flag("draft") {
                    a.push("--draft".into());
                }
                a
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!("/repos/{}/pulls", i.str("repo").unwrap_or_default()),
                    json!({"title": i.str("title"), "body": i.str("body").unwrap_or(""), "base": i.str("base"), "head": i.str("head"), "draft": i.flag("draft")}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Github,
            action: "pr-status",
            description: "Pull requests relevant to the checkout",
            class: R,
            break_glass: false,
            fields: const { &[REPO] },
            cli: Some(|i| {
                let mut a = argv(&[
                    "gh",
                    "pr",
                    "status",
                    "--json=number,url,state,headRefName,headRefOid",
                ]);
                flag_eq(&mut a, "--repo", i.str("repo"));
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Github,
            action: "pr-view",
            description: "One pull request",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    REPO,
                    F::req(
                        "pr",
                        K::Int {
                            min: 1,
                            max: i64::MAX,
                        },
                        "number",
                    ),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "gh",
                    "pr",
                    "view",
                    &i.int("pr").unwrap_or(0).to_string(),
                    "--json=number,url,state,headRefName,headRefOid,mergeCommit",
                ]);
                flag_eq(&mut a, "--repo", i.str("repo"));
                a
            }),
            api: Some(|i| {
                ApiRequest::get(format!(
                    "/repos/{}/pulls/{}",
                    i.str("repo").unwrap_or_default(),
                    i.int("pr").unwrap_or(0)
                ))
            }),
        },
        ActionSpec {
            tool: ToolName::Github,
            action: "pr-merge",
            description: "Merge a pull request",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    REPO,
                    F::req(
                        "pr",
                        K::Int {
                            min: 1,
                            max: i64::MAX,
                        },
                        "number",
                    ),
                    F::opt(
                        "method",
                        K::Enum(&["merge", "squash", "rebase"]),
                        "default merge",
                    ),
                ]
            },
            cli: Some(|i| {
                let method = i.str("method").unwrap_or("merge");
                let mut a = argv(&[
                    "gh",
                    "pr",
                    "merge",
                    &i.int("pr").unwrap_or(0).to_string(),
                    &format!("--{method}"),
                ]);
                flag_eq(&mut a, "--repo", i.str("repo"));
                a
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!(
                        "/repos/{}/pulls/{}/merge",
                        i.str("repo").unwrap_or_default(),
                        i.int("pr").unwrap_or(0)
                    ),
                    json!({"merge_method": i.str("method").unwrap_or("merge")}),
                )
                .with_method(HttpMethod::Put)
            }),
        },
        ActionSpec {
            tool: ToolName::Github,
            action: "branch-create",
            description: "Create a branch at a commit",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("repo", K::Repo, "owner/name"),
                    F::req("branch", K::GitRef, "branch"),
                    F::req("sha", K::GitSha, "commit"),
                ]
            },
            cli: Some(|i| {
                argv(&[
                    "gh",
                    "api",
                    "--method=POST",
                    &format!("repos/{}/git/refs", i.str("repo").unwrap_or_default()),
                    &format!(
                        "--raw-field=ref=refs/heads/{}",
                        i.str("branch").unwrap_or_default()
                    ),
                    &format!("--raw-field=sha={}", i.str("sha").unwrap_or_default()),
                ])
            }),
            api: Some(|i| {
                ApiRequest::post(
                    format!("/repos/{}/git/refs", i.str("repo").unwrap_or_default()),
                    json!({"ref": format!("refs/heads/{}", i.str("branch").unwrap_or_default()), "sha": i.str("sha")}),
                )
            }),
        },
        ActionSpec {
            tool: ToolName::Gitlab,
            action: "mr-create",
            description: "Open a merge request",
            class: W_LOW,
            break_glass: false,
            fields: const {
                &[
                    F::req("title", K::Text { max: 256 }, "title"),
                    F::opt("description", TEXT, "description"),
                    F::req("source", K::GitRef, "source branch"),
                    F::req("target", K::GitRef, "target branch"),
                    F::opt("draft", K::Bool, "draft"),
                    F::opt("labels", K::List(ListOf::Names), "labels"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&["glab", "mr", "create", "--yes"]);
                flag_eq(&mut a, "--title", i.str("title"));
                flag_eq(
                    &mut a,
                    "--description",
                    Some(i.str("description").unwrap_or("")),
                );
                flag_eq(&mut a, "--source-branch", i.str("source"));
                flag_eq(&mut a, "--target-branch", i.str("target"));
                if i.flag("draft") {
                    a.push("--draft".into());
                }
                for l in i.strings("labels") {
                    a.push(format!("--label={l}"));
                }
                a
            }),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Gitlab,
            action: "mr-list",
            description: "Open merge requests",
            class: R,
            break_glass: false,
            fields: &[],
            cli: Some(|_| argv(&["glab", "mr", "list", "--output=json"])),
            api: None,
        },
        ActionSpec {
            tool: ToolName::Gitlab,
            action: "mr-view",
            description: "One merge request",
            class: R,
            break_glass: false,
            fields: const {
                &[
                    F::req(
                        "mr",
                        K::Int {
                            min: 1,
                            max: i64::MAX,
                        },
                        "iid",
                    ),
                    F::req("project", K::Name, "project path, e.g. group/app"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "glab",
                    "mr",
                    "view",
                    &i.int("mr").unwrap_or(0).to_string(),
                    "--output=json",
                ]);
                flag_eq(&mut a, "--repo", i.str("project"));
                a
            }),
            api: Some(|i| {
                ApiRequest::get(format!(
                    "/api/v4/projects/{}/merge_requests/{}",
                    seg(i.str("project").unwrap_or_default()),
                    i.int("mr").unwrap_or(0)
                ))
            }),
        },
        ActionSpec {
            tool: ToolName::Gitlab,
            action: "mr-merge",
            description: "Merge a merge request",
            class: W_MED,
            break_glass: false,
            fields: const {
                &[
                    F::req(
                        "mr",
                        K::Int {
                            min: 1,
                            max: i64::MAX,
                        },
                        "iid",
                    ),
                    F::opt("squash", K::Bool, "squash"),
                ]
            },
            cli: Some(|i| {
                let mut a = argv(&[
                    "glab",
                    "mr",
                    "merge",
                    &i.int("mr").unwrap_or(0).to_string(),
                    "--yes",
                ]);
                if i.flag("squash") {
                    a.push("--squash".into());
                }
                a
            }),
            api: None,
        },
    ]
}
