//! Running ceso itself for a tool call: a child process of the same binary, in the restricted
//! role, with the agent's values as separate arguments (never through a shell).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rmcp::model::{CallToolResult, ContentBlock};

/// The environment variable that narrows the role of a ceso process (it can never widen it).
pub const ROLE_VARIABLE: &str = "CESO_ROLE";

/// The role every tool call runs in.
pub const RESTRICTED_ROLE: &str = "restricted";

/// How a tool call's ceso prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Printed {
    /// `--output json`: the tool result is the JSON document the command prints.
    Json,
    /// `--output human`: the tool result is the command's text.
    Text,
}

/// The ceso binary and the global options every tool call shares.
#[derive(Debug, Clone)]
pub struct Ceso {
    program: PathBuf,
    state: PathBuf,
    config: Option<PathBuf>,
}

impl Ceso {
    /// Runs `program` (normally `std::env::current_exe()`) with `--state state` and, when the
    /// server was started with a configuration file, `--config config`.
    pub fn new(program: PathBuf, state: PathBuf, config: Option<PathBuf>) -> Self {
        Ceso {
            program,
            state,
            config,
        }
    }

    /// The command for `words` (the subcommand and its arguments): the global options first,
    /// then the words, each a separate argument; the restricted role; no standard input.
    pub fn command(&self, printed: Printed, words: &[OsString]) -> Command {
        let mut command = Command::new(&self.program);
        command.arg("--state").arg(&self.state);
        if let Some(config) = &self.config {
            command.arg("--config").arg(config);
        }
        command.arg("--output").arg(match printed {
            Printed::Json => "json",
            Printed::Text => "human",
        });
        command
            .args(words)
            .env(ROLE_VARIABLE, RESTRICTED_ROLE)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs `words` and turns what happened into the tool result: success for an exit code in
    /// `success_codes`, otherwise a tool error carrying ceso's message.
    ///
    /// A call the client cancels still runs to its end (an apply that started is finished and
    /// audited as usual); only its result is dropped.
    pub async fn call(
        &self,
        printed: Printed,
        words: Vec<OsString>,
        success_codes: &[i32],
    ) -> CallToolResult {
        let mut command = self.command(printed, &words);
        tracing::debug!(?words, "mcp: running ceso");
        let output = tokio::task::spawn_blocking(move || command.output()).await;
        match output {
            Ok(Ok(output)) => tool_result(&output, success_codes),
            Ok(Err(error)) => CallToolResult::error(vec![ContentBlock::text(format!(
                "error: cannot run {}: {error}",
                self.program.display()
            ))]),
            Err(error) => CallToolResult::error(vec![ContentBlock::text(format!(
                "error: the ceso process for this call was lost: {error}"
            ))]),
        }
    }
}

/// The tool result of a finished ceso process. On success: its standard output, then its
/// warnings (standard error) if there were any. On failure (`isError`): its error message
/// (standard error), then its standard output if it printed anything (the diagnostics of an
/// invalid inventory, the steps an apply ran before it failed).
pub fn tool_result(output: &Output, success_codes: &[i32]) -> CallToolResult {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code();
    if code.is_some_and(|code| success_codes.contains(&code)) {
        let mut content = vec![ContentBlock::text(stdout.into_owned())];
        if !stderr.trim().is_empty() {
            content.push(ContentBlock::text(stderr.trim_end().to_owned()));
        }
        return CallToolResult::success(content);
    }
    let message = if !stderr.trim().is_empty() {
        stderr.trim_end().to_owned()
    } else {
        match code {
            Some(code) => format!("error: ceso exited with code {code} and printed no message"),
            None => "error: ceso was ended by a signal before it finished".to_owned(),
        }
    };
    let mut content = vec![ContentBlock::text(message)];
    if !stdout.trim().is_empty() {
        content.push(ContentBlock::text(stdout.into_owned()));
    }
    CallToolResult::error(content)
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    use super::*;

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            status: ExitStatus::from_raw(code << 8),
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
        }
    }

    fn texts(result: &CallToolResult) -> Vec<String> {
        result
            .content
            .iter()
            .map(|block| match block {
                ContentBlock::Text(text) => text.text.clone(),
                other => panic!("not text: {other:?}"),
            })
            .collect()
    }

    #[test]
    fn the_global_options_come_first_and_every_call_is_restricted() {
        let ceso = Ceso::new(
            PathBuf::from("/usr/bin/ceso"),
            PathBuf::from("/srv/ceso/state.redb"),
            Some(PathBuf::from("/srv/ceso/config.yaml")),
        );
        let command = ceso.command(
            Printed::Json,
            &["vm".into(), "info".into(), "--".into(), "web-01".into()],
        );
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            [
                "--state",
                "/srv/ceso/state.redb",
                "--config",
                "/srv/ceso/config.yaml",
                "--output",
                "json",
                "vm",
                "info",
                "--",
                "web-01"
            ]
        );
        let role = command
            .get_envs()
            .find(|(name, _)| *name == ROLE_VARIABLE)
            .and_then(|(_, value)| value);
        assert_eq!(role, Some(std::ffi::OsStr::new("restricted")));
    }

    #[test]
    fn text_commands_ask_for_human_output_even_when_the_configuration_says_json() {
        let ceso = Ceso::new("ceso".into(), "state.redb".into(), None);
        let command = ceso.command(Printed::Text, &["apply".into()]);
        let args: Vec<_> = command.get_args().collect();
        assert_eq!(
            args,
            ["--state", "state.redb", "--output", "human", "apply"]
        );
    }

    #[test]
    fn an_accepted_exit_code_is_a_result_with_the_output_then_the_warnings() {
        let result = tool_result(&output(2, "{\"changes\":[]}\n", "warning: x\n"), &[0, 2]);
        assert_eq!(result.is_error, Some(false));
        assert_eq!(texts(&result), ["{\"changes\":[]}\n", "warning: x"]);

        let result = tool_result(&output(0, "[]\n", ""), &[0]);
        assert_eq!(texts(&result), ["[]\n"]);
    }

    #[test]
    fn a_failure_is_a_tool_error_with_the_message_first() {
        let result = tool_result(
            &output(
                1,
                "{\"valid\":false}\n",
                "error: the manifests are invalid\n",
            ),
            &[0],
        );
        assert_eq!(result.is_error, Some(true));
        assert_eq!(
            texts(&result),
            ["error: the manifests are invalid", "{\"valid\":false}\n"]
        );
    }

    #[test]
    fn a_failure_without_a_message_still_says_what_happened() {
        let result = tool_result(&output(3, "", ""), &[0]);
        assert_eq!(
            texts(&result),
            ["error: ceso exited with code 3 and printed no message"]
        );
        let killed = Output {
            status: ExitStatus::from_raw(9),
            stdout: Vec::new(),
            stderr: Vec::new(),
        };
        assert_eq!(
            texts(&tool_result(&killed, &[0])),
            ["error: ceso was ended by a signal before it finished"]
        );
    }
}
