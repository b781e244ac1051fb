//! `ceso completions SHELL` and `ceso man`: generated from the command-line definition, so they
//! always match the commands and flags of this build.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

use super::files::write_atomically;
use super::help::examples_of;
use super::{CommandError, Outcome};

/// The section of every page: user commands.
const SECTION: &str = "1";

/// Arguments of `ceso completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell whose completion script to print.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Arguments of `ceso man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// The command whose page to print, e.g. `vm create` (default: ceso's own page, which lists
    /// every command).
    #[arg(value_name = "COMMAND", conflicts_with = "out")]
    pub command: Vec<String>,
    /// Write every page into this directory instead of printing one: ceso.1 and one per command
    /// (ceso-plan.1, ceso-vm-create.1, ...), as packagers install them.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script of `args.shell` for `command` (run as `ceso`) to standard output.
pub fn completions(
    args: CompletionsArgs,
    mut command: clap::Command,
) -> Result<Outcome, CommandError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "ceso", &mut script);
    print(&script, "completion script")
}

/// Prints the man page of ceso or of `args.command`, or writes every page into `args.out`.
pub fn man(args: ManArgs, command: clap::Command) -> Result<Outcome, CommandError> {
    let pages = pages(command);
    if let Some(dir) = args.out {
        for page in &pages {
            let file = dir.join(format!("{}.{SECTION}", page_name(page)));
            write_atomically(&file, &render_page(page)?)?;
        }
        println!(
            "Wrote {} man pages to {}: ceso.{SECTION} and one per command (ceso-plan.{SECTION}, ceso-vm-create.{SECTION}, ...).",
            pages.len(),
            dir.display()
        );
        return Ok(Outcome::Success);
    }
    let wanted = std::iter::once("ceso")
        .chain(args.command.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ");
    let Some(page) = pages.iter().find(|page| command_path(page) == wanted) else {
        let known: Vec<&str> = pages
            .iter()
            .filter_map(|page| command_path(page).strip_prefix("ceso "))
            .collect();
        return Err(CommandError::with_hint(
            format!("there is no command `{wanted}`, so no man page for it"),
            format!(
                "give a command as `ceso man vm create`; the commands: {}",
                known.join(", ")
            ),
        ));
    };
    print(render_page(page)?.as_bytes(), "man page")
}

/// Every command that gets a page, ceso first, each built (so it knows its full name); clap's
/// own `help` subcommands are left out.
fn pages(command: clap::Command) -> Vec<clap::Command> {
    fn collect(command: &clap::Command, pages: &mut Vec<clap::Command>) {
        pages.push(command.clone());
        for sub in subcommands(command) {
            collect(sub, pages);
        }
    }
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let mut pages = Vec::new();
    collect(&command, &mut pages);
    pages
}

/// The subcommands a user can run and read about.
fn subcommands(command: &clap::Command) -> impl Iterator<Item = &clap::Command> {
    command
        .get_subcommands()
        .filter(|sub| !sub.is_hide_set() && sub.get_name() != "help")
}

/// `ceso vm create`
fn command_path(command: &clap::Command) -> &str {
    command.get_bin_name().unwrap_or(command.get_name())
}

/// `ceso-vm-create`, the page's name (and file name without the section).
fn page_name(command: &clap::Command) -> &str {
    command.get_display_name().unwrap_or(command.get_name())
}

/// The page of `command`: clap_mangen's sections, with the commands below it listed with their
/// pages, its examples (help.rs) and the pages above it.
fn render_page(command: &clap::Command) -> Result<String, CommandError> {
    let man = Man::new(command.clone()).source(format!("ceso {}", env!("CARGO_PKG_VERSION")));
    let mut page = Vec::new();
    let rendered: std::io::Result<()> = (|| {
        man.render_title(&mut page)?;
        man.render_name_section(&mut page)?;
        man.render_synopsis_section(&mut page)?;
        man.render_description_section(&mut page)?;
        if command.get_arguments().any(|arg| !arg.is_hide_set()) {
            man.render_options_section(&mut page)?;
        }
        let mut roff = Roff::new();
        // Page names such as ceso-template-import(1) are not hyphenated from here on.
        roff.control("nh", []);
        commands_section(&mut roff, command);
        examples_section(&mut roff, command);
        see_also_section(&mut roff, command);
        roff.to_writer(&mut page)?;
        if command.get_version().is_some() {
            man.render_version_section(&mut page)?;
        }
        Ok(())
    })();
    rendered.map_err(|e| {
        CommandError::new(format!(
            "cannot render the man page of `{}`: {e}",
            command_path(command)
        ))
    })?;
    // Every section starts with the roff crate's preamble (one string definition): keep one.
    let preamble = Roff::new().render();
    let sections = String::from_utf8_lossy(&page).replace(&preamble, "");
    Ok(format!("{preamble}{sections}"))
}

/// COMMANDS: every command below `command`, with its summary and its page.
fn commands_section(roff: &mut Roff, command: &clap::Command) {
    fn list(roff: &mut Roff, command: &clap::Command) {
        for sub in subcommands(command) {
            roff.control("TP", []);
            roff.text([bold(command_path(sub))]);
            let mut about = sub.get_about().map(ToString::to_string).unwrap_or_default();
            if !about.is_empty() && !about.ends_with(['.', '!', '?']) {
                about.push('.');
            }
            roff.text([
                roman(format!("{about} See ")),
                bold(page_name(sub)),
                roman(format!("({SECTION}).")),
            ]);
            list(roff, sub);
        }
    }
    if subcommands(command).next().is_some() {
        roff.control("SH", ["COMMANDS"]);
        list(roff, command);
    }
}

/// EXAMPLES: each comment as a paragraph, its invocations indented in bold, line by line.
fn examples_section(roff: &mut Roff, command: &clap::Command) {
    let Some(lines) = examples_of(command_path(command)) else {
        return;
    };
    roff.control("SH", ["EXAMPLES"]);
    let mut in_invocations = false;
    let mut in_comment = false;
    for line in lines {
        match line.strip_prefix('#') {
            Some(comment) => {
                if in_invocations {
                    roff.control("fi", []).control("RE", []);
                    in_invocations = false;
                }
                if !in_comment {
                    roff.control("PP", []);
                    in_comment = true;
                }
                roff.text([roman(comment.trim())]);
            }
            None => {
                in_comment = false;
                if !in_invocations {
                    roff.control("RS", ["4"]).control("nf", []);
                    in_invocations = true;
                }
                roff.text([bold(*line)]);
            }
        }
    }
    if in_invocations {
        roff.control("fi", []).control("RE", []);
    }
}

/// SEE ALSO: the pages of the commands above `command` (none for ceso's own page).
fn see_also_section(roff: &mut Roff, command: &clap::Command) {
    let words: Vec<&str> = command_path(command).split(' ').collect();
    if words.len() < 2 {
        return;
    }
    let mut references = Vec::new();
    for end in 1..words.len() {
        if end > 1 {
            references.push(roman(", "));
        }
        references.push(bold(words[..end].join("-")));
        references.push(roman(format!("({SECTION})")));
    }
    roff.control("SH", ["SEE ALSO"]).text(references);
}

/// Writes `bytes` to standard output; a reader that stopped early (`| head`) is no error.
fn print(bytes: &[u8], what: &str) -> Result<Outcome, CommandError> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(Outcome::Success),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Success),
        Err(e) => Err(CommandError::new(format!("cannot print the {what}: {e}"))),
    }
}
