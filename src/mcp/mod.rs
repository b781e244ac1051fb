//! The Model Context Protocol server of `ceso mcp` (docs/mcp.md): tools for AI agents over
//! stdio. Every tool runs ceso itself as a child process in the restricted role
//! (`CESO_ROLE=restricted`), so the role and promotion checks of every ceso process decide
//! what a call may do; this module only translates tool calls into command lines and results.

mod run;

use std::ffi::OsString;
use std::path::PathBuf;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::schemars::{self, JsonSchema};
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router};
use serde::Deserialize;

pub use run::{Ceso, Printed, RESTRICTED_ROLE, ROLE_VARIABLE, tool_result};

/// Why the server stopped other than by the client hanging up.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    /// Standard input ended before a client initialized a session.
    #[error(
        "standard input closed before an MCP client initialized a session: `ceso mcp` is started by an MCP host, which speaks the protocol on its standard input (docs/mcp.md)"
    )]
    ClosedBeforeInitialize,
    /// The client never completed the MCP initialization.
    #[error("the MCP session did not start: {0}")]
    Start(String),
    /// The task serving the session failed.
    #[error("the MCP session ended abnormally: {0}")]
    Serve(#[from] tokio::task::JoinError),
}

const VALIDATE: &str = "Check the inventory's manifests for errors without contacting any host. \
Read-only: changes nothing. Returns JSON {valid, diagnostics}; each diagnostic names the file, \
line, resource and field.";

const PLAN: &str = "Show what `apply` would change: reads the manifests, observes the ESXi hosts \
and computes the plan (a dry run). Read-only: changes nothing on any host. Returns the plan as \
JSON (ceso's plan format: every change per resource, with its steps). `prune: true` also plans \
deleting managed VMs that are no longer in the manifests.";

const VM_LIST: &str = "List every VM of the inventory's hosts (power, CPU, memory, address, \
whether ceso manages it) and the declared VMs missing there. Read-only: changes nothing. Returns \
JSON {vms: [...]}.";

const VM_INFO: &str = "One VM in detail: hardware, disks, network adapters, decoded cloud-init \
(secrets redacted) and what ceso last applied. Read-only: changes nothing. `name` is the VM's \
manifest name or its name on the host. Returns JSON.";

const BACKUP_LIST: &str = "List the backups in the catalog (all, or one VM's). Read-only: \
changes nothing. Returns JSON.";

const AUDIT_LIST: &str = "List every run recorded in ceso's audit log (applies and other \
changes: who, when, status, step counts). Read-only: changes nothing. Returns JSON.";

const PROMOTE_REQUEST: &str = "Ask a human for the right to change the hosts for a limited time. \
Changes nothing on any host: it only records the request (with your reason and the time to live, \
e.g. `30m`) in ceso's state and audit log. A person then approves it or not at their own \
terminal with `ceso promote approve ID`; you cannot approve it. Tell the user the returned id. \
Returns JSON {id, status, ...}.";

const PROMOTION_STATUS: &str = "Your role, your profile and the active promotion, if any (its id \
and when it expires). Read-only: changes nothing. Returns JSON {role, profile, promotion}.";

const APPLY: &str = "CHANGES THE HOSTS: plans the inventory again and carries the plan out \
(creates, reconfigures, powers on or off, replaces, and with `prune: true` deletes VMs). \
Refused unless a promotion approved by a human is active (see promote_request and \
promotion_status). Call `plan` first and check what it would do. Returns the steps it ran as \
text; a step that failed makes the call an error.";

/// Arguments of `plan`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PlanParams {
    /// Also plan deleting managed VMs that are no longer in the manifests (never protected ones).
    #[serde(default)]
    pub prune: bool,
}

/// Arguments of `apply`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApplyParams {
    /// Also delete managed VMs that are no longer in the manifests (never protected ones).
    #[serde(default)]
    pub prune: bool,
}

/// Arguments of `vm_list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmListParams {
    /// Only this host (a `Host` name of the inventory).
    #[serde(default)]
    pub host: Option<String>,
}

/// Arguments of `vm_info`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VmInfoParams {
    /// The VM: its manifest name or its name on the host.
    pub name: String,
    /// Only look on this host (a `Host` name of the inventory); needed when the name is on several.
    #[serde(default)]
    pub host: Option<String>,
}

/// Arguments of `backup_list`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupListParams {
    /// Only this VM's backups (its manifest name).
    #[serde(default)]
    pub vm: Option<String>,
}

/// Arguments of `promote_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequestParams {
    /// Why you need to change the hosts: what you will apply and why. The approver reads it.
    pub reason: String,
    /// How long the promotion lasts once approved, e.g. `30m` or `2h`.
    pub ttl: String,
}

/// The MCP server: the tools, the inventory they work on, and how ceso is run.
#[derive(Debug, Clone)]
pub struct CesoServer {
    ceso: Ceso,
    inventory: PathBuf,
    tool_router: ToolRouter<Self>,
}

impl CesoServer {
    /// A server whose tools work on `inventory` (an absolute path is best: it is passed to
    /// every ceso process as it is).
    pub fn new(ceso: Ceso, inventory: PathBuf) -> Self {
        CesoServer {
            ceso,
            inventory,
            tool_router: Self::tool_router(),
        }
    }

    /// Serves MCP on standard input and output until the client hangs up.
    pub async fn serve_stdio(self) -> Result<(), McpError> {
        let running =
            self.serve(rmcp::transport::stdio_pipes())
                .await
                .map_err(|error| match error {
                    rmcp::service::ServerInitializeError::ConnectionClosed(_) => {
                        McpError::ClosedBeforeInitialize
                    }
                    other => McpError::Start(other.to_string()),
                })?;
        let reason = running.waiting().await?;
        tracing::debug!(?reason, "mcp: session ended");
        Ok(())
    }

    fn inventory(&self) -> OsString {
        self.inventory.clone().into_os_string()
    }
}

/// `value` as the argument of a name-like option, refused when it could be read as an option
/// (it starts with `-`) or is empty.
pub fn name_argument(field: &str, value: &str) -> Result<OsString, String> {
    if value.is_empty() {
        return Err(format!("error: `{field}` is empty; give a name"));
    }
    if value.starts_with('-') {
        return Err(format!(
            "error: `{field}` must be a name, and {value:?} starts with `-` (it would be read as an option)"
        ));
    }
    Ok(OsString::from(value))
}

/// `--option=value` as one argument, so that no value can be read as another option.
fn option(name: &str, value: &str) -> OsString {
    OsString::from(format!("--{name}={value}"))
}

fn refused(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

fn words(words: &[&str]) -> Vec<OsString> {
    words.iter().map(OsString::from).collect()
}

#[tool_router]
impl CesoServer {
    #[tool(
        description = VALIDATE,
        annotations(title = "Validate the manifests", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn validate(&self) -> CallToolResult {
        let mut args = words(&["validate"]);
        args.push(self.inventory());
        self.ceso.call(Printed::Json, args, &[0]).await
    }

    #[tool(
        description = PLAN,
        annotations(title = "Plan (dry run)", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn plan(&self, Parameters(params): Parameters<PlanParams>) -> CallToolResult {
        let mut args = words(&["plan"]);
        args.push(self.inventory());
        if params.prune {
            args.push("--prune".into());
        }
        // Exit code 2 means "changes pending", not a failure.
        self.ceso.call(Printed::Json, args, &[0, 2]).await
    }

    #[tool(
        description = VM_LIST,
        annotations(title = "List VMs", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn vm_list(&self, Parameters(params): Parameters<VmListParams>) -> CallToolResult {
        let mut args = words(&["vm", "list", "--inventory"]);
        args.push(self.inventory());
        if let Some(host) = &params.host {
            match name_argument("host", host) {
                Ok(host) => args.push(option("host", &host.to_string_lossy())),
                Err(message) => return refused(message),
            }
        }
        self.ceso.call(Printed::Json, args, &[0]).await
    }

    #[tool(
        description = VM_INFO,
        annotations(title = "Show one VM", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = true)
    )]
    async fn vm_info(&self, Parameters(params): Parameters<VmInfoParams>) -> CallToolResult {
        let name = match name_argument("name", &params.name) {
            Ok(name) => name,
            Err(message) => return refused(message),
        };
        let mut args = words(&["vm", "info", "--inventory"]);
        args.push(self.inventory());
        if let Some(host) = &params.host {
            match name_argument("host", host) {
                Ok(host) => args.push(option("host", &host.to_string_lossy())),
                Err(message) => return refused(message),
            }
        }
        args.push("--".into());
        args.push(name);
        self.ceso.call(Printed::Json, args, &[0]).await
    }

    #[tool(
        description = BACKUP_LIST,
        annotations(title = "List backups", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn backup_list(
        &self,
        Parameters(params): Parameters<BackupListParams>,
    ) -> CallToolResult {
        let mut args = words(&["backup", "list", "--inventory"]);
        args.push(self.inventory());
        if let Some(vm) = &params.vm {
            match name_argument("vm", vm) {
                Ok(vm) => {
                    args.push("--".into());
                    args.push(vm);
                }
                Err(message) => return refused(message),
            }
        }
        self.ceso.call(Printed::Json, args, &[0]).await
    }

    #[tool(
        description = AUDIT_LIST,
        annotations(title = "List audited runs", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn audit_list(&self) -> CallToolResult {
        self.ceso
            .call(Printed::Json, words(&["audit", "list"]), &[0])
            .await
    }

    #[tool(
        description = PROMOTE_REQUEST,
        annotations(title = "Ask a human for a promotion", read_only_hint = false, destructive_hint = false, idempotent_hint = false, open_world_hint = false)
    )]
    async fn promote_request(
        &self,
        Parameters(params): Parameters<PromoteRequestParams>,
    ) -> CallToolResult {
        let mut args = words(&["promote", "request"]);
        args.push(option("reason", &params.reason));
        args.push(option("ttl", &params.ttl));
        args.push("--json".into());
        self.ceso.call(Printed::Json, args, &[0]).await
    }

    #[tool(
        description = PROMOTION_STATUS,
        annotations(title = "Role and promotion", read_only_hint = true, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn promotion_status(&self) -> CallToolResult {
        self.ceso
            .call(Printed::Json, words(&["promote", "status", "--json"]), &[0])
            .await
    }

    #[tool(
        description = APPLY,
        annotations(title = "Apply (changes hosts)", read_only_hint = false, destructive_hint = true, idempotent_hint = true, open_world_hint = true)
    )]
    async fn apply(&self, Parameters(params): Parameters<ApplyParams>) -> CallToolResult {
        let mut args = words(&["apply"]);
        args.push(self.inventory());
        // Nobody is at a terminal to confirm: the human's approval of the promotion is the
        // confirmation, and without one the restricted role refuses the apply.
        args.push("--auto-approve".into());
        if params.prune {
            args.push("--prune".into());
        }
        self.ceso.call(Printed::Text, args, &[0]).await
    }
}

#[tool_handler(router = self.tool_router, name = "ceso", instructions = "ceso manages standalone VMware ESXi hosts from YAML manifests (the inventory). Every tool runs in ceso's restricted role: you may validate the manifests, plan, and inspect VMs, backups and the audit log. Changing the hosts (apply) needs a human's approval: call plan, then promote_request with a reason and a time to live, give the user the request id to approve with `ceso promote approve ID` at their terminal, check promotion_status, then call apply while the promotion is active.")]
impl ServerHandler for CesoServer {}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(name: &str) -> rmcp::model::Tool {
        CesoServer::tool_router()
            .get(name)
            .cloned()
            .unwrap_or_else(|| panic!("no tool {name}"))
    }

    #[test]
    fn the_tools_are_the_documented_ones() {
        let mut names: Vec<String> = CesoServer::tool_router()
            .list_all()
            .into_iter()
            .map(|tool| tool.name.to_string())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "apply",
                "audit_list",
                "backup_list",
                "plan",
                "promote_request",
                "promotion_status",
                "validate",
                "vm_info",
                "vm_list"
            ]
        );
    }

    #[test]
    fn only_apply_and_promote_request_are_not_read_only_and_only_apply_is_destructive() {
        for tool in CesoServer::tool_router().list_all() {
            let annotations = tool.annotations.clone().expect("every tool is annotated");
            let description = tool.description.clone().unwrap_or_default();
            match tool.name.as_ref() {
                "apply" => {
                    assert_eq!(annotations.read_only_hint, Some(false));
                    assert_eq!(annotations.destructive_hint, Some(true));
                    assert!(
                        description.starts_with("CHANGES THE HOSTS"),
                        "{description}"
                    );
                }
                "promote_request" => {
                    assert_eq!(annotations.read_only_hint, Some(false));
                    assert_eq!(annotations.destructive_hint, Some(false));
                    assert!(description.contains("Changes nothing on any host"));
                }
                name => {
                    assert_eq!(annotations.read_only_hint, Some(true), "{name}");
                    assert!(description.contains("Read-only"), "{name}: {description}");
                }
            }
        }
    }

    #[test]
    fn names_that_could_be_read_as_options_are_refused() {
        assert!(name_argument("name", "web-01").is_ok());
        let error = name_argument("name", "--prune").unwrap_err();
        assert!(error.contains("starts with `-`"), "{error}");
        assert!(name_argument("host", "").is_err());
        assert!(name_argument("vm", "-x").is_err());
    }

    #[test]
    fn a_free_text_value_stays_one_argument_of_its_option() {
        assert_eq!(
            option("reason", "--auto-approve; rm -rf /"),
            OsString::from("--reason=--auto-approve; rm -rf /")
        );
    }

    #[test]
    fn vm_info_takes_a_name_and_an_optional_host() {
        let schema = serde_json::to_value(tool("vm_info").input_schema.as_ref()).unwrap();
        assert_eq!(schema["required"], serde_json::json!(["name"]));
        assert!(schema["properties"]["host"].is_object());
    }
}
