//! The CI examples (`examples/ci/`) are specified here: each is a well-formed workflow of its CI,
//! every `ceso` command in their shell scripts is accepted by ceso's real command line (so a
//! renamed or misspelt flag fails this test), and the plan step treats exit code 2 ("changes
//! pending") as success and 1 as failure, which is checked by running that step's script with a
//! stand-in `ceso` that exits with each code.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use ceso::config::Config;
use ceso::plan::markdown::MARKER;
use serde_yaml::Value;

const GITHUB: &str = "examples/ci/github-actions.yml";
const GITLAB: &str = "examples/ci/gitlab-ci.yml";

/// What stands for a variable whose value the workflow does not give literally (a secret, an
/// expression, a value computed while the job runs).
const PLACEHOLDER: &str = "placeholder";

/// Top-level keys of a GitLab pipeline that are not jobs.
const GITLAB_KEYWORDS: &[&str] = &[
    "default",
    "include",
    "stages",
    "variables",
    "workflow",
    "image",
    "services",
    "cache",
    "before_script",
    "after_script",
];

fn load(path: &str) -> (String, Value) {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let yaml = serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path} is not YAML: {e}"));
    (text, yaml)
}

/// One shell script of a workflow: where it is, its text, and the variables its CI sets.
#[derive(Debug, Clone)]
struct Script {
    place: String,
    text: String,
    env: BTreeMap<String, String>,
}

/// The literal variables of a mapping (`env:` or `variables:`); values that are expressions
/// (`${{ ... }}`) are not known before the run.
fn variables(mapping: &Value) -> BTreeMap<String, String> {
    let Some(mapping) = mapping.as_mapping() else {
        return BTreeMap::new();
    };
    mapping
        .iter()
        .filter_map(|(key, value)| {
            let value = match value {
                Value::String(text) if text.contains("${{") => PLACEHOLDER.to_owned(),
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                Value::Bool(flag) => flag.to_string(),
                _ => return None,
            };
            Some((key.as_str()?.to_owned(), value))
        })
        .collect()
}

fn github_jobs(workflow: &Value) -> Vec<(String, &Value)> {
    workflow["jobs"]
        .as_mapping()
        .expect("a GitHub workflow has `jobs`")
        .iter()
        .map(|(name, job)| (name.as_str().expect("job names").to_owned(), job))
        .collect()
}

/// Every `run:` of every step, with the workflow's, the job's and the step's `env:`.
fn github_scripts(workflow: &Value) -> Vec<Script> {
    let mut scripts = Vec::new();
    for (job_name, job) in github_jobs(workflow) {
        let steps = job["steps"].as_sequence().expect("every job has steps");
        for (index, step) in steps.iter().enumerate() {
            let Some(run) = step["run"].as_str() else {
                continue;
            };
            let mut env = variables(&workflow["env"]);
            env.extend(variables(&job["env"]));
            env.extend(variables(&step["env"]));
            let name = step["name"].as_str().unwrap_or("(unnamed)");
            scripts.push(Script {
                place: format!("{GITHUB}: jobs.{job_name}.steps[{index}] ({name})"),
                text: run.to_owned(),
                env,
            });
        }
    }
    scripts
}

fn gitlab_jobs(pipeline: &Value) -> Vec<(String, &Value)> {
    pipeline
        .as_mapping()
        .expect("a GitLab pipeline is a mapping")
        .iter()
        .map(|(name, job)| (name.as_str().expect("keys are strings").to_owned(), job))
        .filter(|(name, _)| !GITLAB_KEYWORDS.contains(&name.as_str()) && !name.starts_with('.'))
        .collect()
}

/// Every entry of every job's `before_script`, `script` and `after_script`, with the
/// pipeline's and the job's `variables:`.
fn gitlab_scripts(pipeline: &Value) -> Vec<Script> {
    let mut scripts = Vec::new();
    for (job_name, job) in gitlab_jobs(pipeline) {
        for part in ["before_script", "script", "after_script"] {
            let Some(entries) = job[part].as_sequence() else {
                continue;
            };
            for (index, entry) in entries.iter().enumerate() {
                let text = entry.as_str().unwrap_or_else(|| {
                    panic!("{GITLAB}: {job_name}.{part}[{index}] is not a string")
                });
                let mut env = variables(&pipeline["variables"]);
                env.extend(variables(&job["variables"]));
                scripts.push(Script {
                    place: format!("{GITLAB}: {job_name}.{part}[{index}]"),
                    text: text.to_owned(),
                    env,
                });
            }
        }
    }
    scripts
}

/// `text` with `${{ expression }}`, `${NAME}`, `${NAME:-default}` and `$NAME` replaced by the
/// variable's value from `env`, or [`PLACEHOLDER`]. `$?`, `$(` and the like stay as they are.
fn expand(text: &str, env: &BTreeMap<String, String>) -> String {
    let value = |name: &str| {
        env.get(name)
            .cloned()
            .unwrap_or_else(|| PLACEHOLDER.to_owned())
    };
    let mut out = String::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(expression) = after.strip_prefix("{{") {
            let end = expression.find("}}").expect("an expression ends with }}");
            out.push_str(PLACEHOLDER);
            rest = &expression[end + 2..];
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced.find('}').expect("${ ends with }");
            let name = braced[..end].split(":-").next().unwrap_or_default();
            out.push_str(&value(name));
            rest = &braced[end + 1..];
        } else {
            let length = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if length == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
                out.push('$');
            } else {
                out.push_str(&value(&after[..length]));
            }
            rest = &after[length..];
        }
    }
    out.push_str(rest);
    out
}

/// The commands of a script, each as the words its shell would pass: continued lines joined,
/// variables expanded, quotes removed; a quoted string over several lines is one word.
fn shell_commands(script: &Script) -> Vec<Vec<String>> {
    let expanded = expand(&script.text, &script.env).replace("\\\n", " ");
    let mut commands = Vec::new();
    let mut pending = String::new();
    for line in expanded.lines() {
        pending.push_str(line);
        pending.push('\n');
        let Some(words) = shlex::split(&pending) else {
            continue; // a quote still open: the line goes on
        };
        pending.clear();
        commands.extend(split_at_operators(words));
    }
    assert!(
        pending.trim().is_empty(),
        "{}: unbalanced quotes in:\n{pending}",
        script.place
    );
    commands
}

/// Cuts a line's words into simple commands: at `;`, `&&`, `||`, `|`, the keywords that start
/// a command (`then`, `do`, ...) and redirections (whose target is dropped).
fn split_at_operators(words: Vec<String>) -> Vec<Vec<String>> {
    const STARTS_COMMAND: &[&str] = &[
        "|", "||", "&&", ";", "if", "then", "do", "else", "elif", "while", "until", "!", "{", "(",
        "time",
    ];
    let mut commands = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut redirected = false;
    for word in words {
        if STARTS_COMMAND.contains(&word.as_str()) {
            commands.push(std::mem::take(&mut current));
            redirected = false;
            continue;
        }
        let is_redirection = word.starts_with('>')
            || word.starts_with('<')
            || word.starts_with("&>")
            || word
                .trim_start_matches(|c: char| c.is_ascii_digit())
                .starts_with('>');
        if is_redirection {
            redirected = true;
            continue;
        }
        let ends_command = word.ends_with(';');
        let word = word.trim_end_matches(';').to_owned();
        if !redirected && !word.is_empty() {
            current.push(word);
        }
        redirected = false;
        if ends_command {
            commands.push(std::mem::take(&mut current));
        }
    }
    commands.push(current);
    commands
        .into_iter()
        .map(|command| {
            // Leading `NAME=value` words set variables for the command.
            command
                .into_iter()
                .skip_while(|w| w.split_once('=').is_some_and(|(n, _)| is_name(n)))
                .collect::<Vec<_>>()
        })
        .filter(|command| !command.is_empty())
        .collect()
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !text.starts_with(|c: char| c.is_ascii_digit())
}

/// The `ceso` commands of `scripts`, each checked against ceso's command line: `Err` names the
/// script and clap's complaint for every command it refuses.
fn checked_ceso_commands(scripts: &[Script]) -> Result<Vec<Vec<String>>, String> {
    let mut found = Vec::new();
    let mut refused = Vec::new();
    for script in scripts {
        assert!(
            !script.text.contains("$(ceso"),
            "{}: run ceso as a command of its own, not in a command substitution, so this test sees it",
            script.place
        );
        for words in shell_commands(script) {
            if words[0] != "ceso" {
                continue;
            }
            let parsed = ceso::cli::command_line(&Config::default()).try_get_matches_from(&words);
            if let Err(error) = parsed {
                refused.push(format!(
                    "{}: `{}`:\n{}",
                    script.place,
                    words.join(" "),
                    error.render()
                ));
            }
            found.push(words);
        }
    }
    if refused.is_empty() {
        Ok(found)
    } else {
        Err(refused.join("\n"))
    }
}

fn subcommands(commands: &[Vec<String>]) -> Vec<&str> {
    let mut names: Vec<&str> = commands.iter().map(|c| c[1].as_str()).collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[test]
fn the_github_workflow_has_the_structure_github_expects() {
    let (text, workflow) = load(GITHUB);
    let on = &workflow["on"];
    assert!(on["pull_request"].is_mapping(), "runs on pull requests");
    let pushed = on["push"]["branches"].as_sequence().expect("push.branches");
    assert!(
        pushed.iter().any(|b| b == "main"),
        "applies on pushes to main"
    );
    assert!(on.get("workflow_dispatch").is_some(), "can be run by hand");
    assert_eq!(
        workflow["defaults"]["run"]["shell"], "bash",
        "bash -eo pipefail"
    );
    for (name, job) in github_jobs(&workflow) {
        let runs_on = job["runs-on"]
            .as_sequence()
            .expect("runs-on is a list of labels");
        assert!(
            runs_on.iter().any(|label| label == "self-hosted"),
            "job {name} runs on the self-hosted runner that reaches the hosts"
        );
        for step in job["steps"].as_sequence().expect("steps") {
            assert!(
                step.get("run").is_some() != step.get("uses").is_some(),
                "job {name}: each step either runs a script or uses an action: {step:?}"
            );
        }
    }
    let apply = &workflow["jobs"]["apply"];
    assert_eq!(apply["concurrency"]["group"], "ceso-apply");
    assert_eq!(
        apply["concurrency"]["cancel-in-progress"], false,
        "a running apply is never cancelled"
    );
    assert!(
        text.contains(MARKER),
        "the comment is found again by the marker ceso prints"
    );
    for script in github_scripts(&workflow) {
        assert!(
            !script.text.contains("${{"),
            "{}: expressions reach scripts through env, never pasted into them (script injection)",
            script.place
        );
    }
}

#[test]
fn the_gitlab_pipeline_has_the_structure_gitlab_expects() {
    let (text, pipeline) = load(GITLAB);
    let stages: Vec<&str> = pipeline["stages"]
        .as_sequence()
        .expect("stages")
        .iter()
        .map(|s| s.as_str().expect("stage names"))
        .collect();
    let jobs = gitlab_jobs(&pipeline);
    assert!(jobs.len() >= 3, "validate, plan and apply at least");
    for (name, job) in &jobs {
        let stage = job["stage"].as_str().expect("every job names its stage");
        assert!(stages.contains(&stage), "job {name}: unknown stage {stage}");
        assert!(
            job["script"].as_sequence().is_some_and(|s| !s.is_empty()),
            "job {name} has a script"
        );
    }
    let plan = &pipeline["plan"];
    let rules = serde_yaml::to_string(&plan["rules"]).expect("rules");
    assert!(
        rules.contains("merge_request_event"),
        "plans merge requests: {rules}"
    );
    let apply = &pipeline["apply"];
    assert!(apply["resource_group"].is_string(), "applies never overlap");
    let rules = serde_yaml::to_string(&apply["rules"]).expect("rules");
    assert!(
        rules.contains("CI_DEFAULT_BRANCH"),
        "applies on the default branch: {rules}"
    );
    assert!(
        text.contains(MARKER),
        "the note is found again by the marker ceso prints"
    );
}

#[test]
fn every_ceso_command_in_the_workflows_is_accepted_by_the_command_line() {
    let (_, workflow) = load(GITHUB);
    let (_, pipeline) = load(GITLAB);
    for (file, scripts) in [
        (GITHUB, github_scripts(&workflow)),
        (GITLAB, gitlab_scripts(&pipeline)),
    ] {
        let commands =
            checked_ceso_commands(&scripts).unwrap_or_else(|refused| panic!("{refused}"));
        assert_eq!(
            subcommands(&commands),
            ["apply", "plan", "validate"],
            "{file} validates, plans and applies"
        );
        assert!(
            commands.iter().any(|c| c[1] == "plan"
                && c.windows(2).any(|w| w == ["--format", "markdown"])
                && c.contains(&"--out".to_owned())),
            "{file} comments the plan as Markdown and saves it: {commands:?}"
        );
    }
}

#[test]
fn a_flag_or_command_ceso_does_not_have_is_refused() {
    let script = |text: &str| Script {
        place: "example".into(),
        text: text.into(),
        env: BTreeMap::from([("CESO_INVENTORY".to_owned(), "inventory".to_owned())]),
    };
    let accepted = checked_ceso_commands(&[script(
        "code=0\nceso plan \"$CESO_INVENTORY\" \\\n  --format markdown --out plan.json > plan.md 2> plan.err || code=$?\nif ceso apply plan.json; then echo done; fi",
    )])
    .expect("accepted");
    assert_eq!(
        accepted,
        [
            vec![
                "ceso",
                "plan",
                "inventory",
                "--format",
                "markdown",
                "--out",
                "plan.json"
            ],
            vec!["ceso", "apply", "plan.json"],
        ]
    );
    for wrong in [
        "ceso plan inventory --formatt markdown",
        "ceso plan inventory --format yaml",
        "ceso aply plan.json",
        "echo start && ceso apply plan.json --yes",
    ] {
        let refused = checked_ceso_commands(&[script(wrong)]);
        assert!(refused.is_err(), "{wrong} must be refused");
    }
}

/// Runs `script` with bash as its CI does (`-e -o pipefail`), a stand-in `ceso` on the PATH that
/// prints a plan and exits with `exit_code`, in a fresh directory. Returns whether the script
/// succeeded, and the GitHub step outputs it wrote.
fn run_with_ceso_exiting(script: &Script, exit_code: i32) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).expect("bin");
    let fake = bin.join("ceso");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho '{MARKER}'\necho \"## a plan (ceso $*)\"\nexit {exit_code}\n"),
    )
    .expect("fake ceso");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let outputs = dir.path().join("github-output");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let output = Command::new("bash")
        .args([
            "--noprofile",
            "--norc",
            "-eo",
            "pipefail",
            "-c",
            &script.text,
        ])
        .env_clear()
        .envs(&script.env)
        .env("PATH", path)
        .env("GITHUB_OUTPUT", &outputs)
        .env("GITHUB_STEP_SUMMARY", dir.path().join("summary"))
        .current_dir(dir.path())
        .output()
        .expect("bash runs");
    let written = std::fs::read_to_string(&outputs).unwrap_or_default();
    (output.status.success(), written)
}

fn plan_script(scripts: Vec<Script>) -> Script {
    scripts
        .into_iter()
        .find(|s| s.text.contains("ceso plan") && s.text.contains("--format markdown"))
        .expect("a script that plans for the comment")
}

#[test]
fn the_plan_step_treats_changes_pending_as_success_and_errors_as_failure() {
    let (_, workflow) = load(GITHUB);
    let (_, pipeline) = load(GITLAB);
    for script in [
        plan_script(github_scripts(&workflow)),
        plan_script(gitlab_scripts(&pipeline)),
    ] {
        for (code, meaning, succeeds) in [
            (0, "no changes", true),
            (2, "changes pending", true),
            (1, "an error", false),
        ] {
            let (succeeded, _) = run_with_ceso_exiting(&script, code);
            assert_eq!(
                succeeded,
                succeeds,
                "{}: exit code {code} ({meaning}) must {} the step",
                script.place,
                if succeeds { "pass" } else { "fail" }
            );
        }
    }
    let github = plan_script(github_scripts(&workflow));
    let (_, outputs) = run_with_ceso_exiting(&github, 2);
    assert!(
        outputs.contains("exit-code=2"),
        "later steps (the comment, the artifact) read the exit code: {outputs:?}"
    );
}
