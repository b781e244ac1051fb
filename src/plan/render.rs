//! Renderings of a [`Plan`]: Terraform-style text for people and the versioned JSON document.

use std::fmt::Write as _;

use anstyle::{AnsiColor, Style};

use super::model::{Action, Plan, ResourceChange, SuspendedChange};

/// Whether the human rendering uses colour (only on a terminal, and not with `NO_COLOR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Colour {
    Always,
    Never,
}

impl Colour {
    /// Colour when standard output is a terminal and `NO_COLOR` is unset.
    pub fn for_stdout() -> Self {
        use std::io::IsTerminal;
        if std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
            Colour::Always
        } else {
            Colour::Never
        }
    }

    fn paint(self, style: Style, text: &str) -> String {
        match self {
            Colour::Always => format!("{style}{text}{style:#}"),
            Colour::Never => text.to_owned(),
        }
    }
}

fn style_of(action: Action) -> Style {
    let colour = match action {
        Action::Create => AnsiColor::Green,
        Action::Update => AnsiColor::Yellow,
        Action::Replace => AnsiColor::Magenta,
        Action::Delete => AnsiColor::Red,
        Action::NoOp => AnsiColor::White,
    };
    Style::new().fg_color(Some(colour.into()))
}

/// Renders the plan for a person.
pub fn human(plan: &Plan, colour: Colour) -> String {
    let mut out = String::new();
    let bold = Style::new().bold();
    let acting: Vec<&ResourceChange> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .collect();
    let blocked = crate::diagnostic::has_errors(&plan.diagnostics);
    let suspended_differ = plan.suspended.iter().any(SuspendedChange::differs);
    out.push_str(match (blocked, acting.is_empty()) {
        (false, true) if suspended_differ => {
            "No changes. Suspended resources differ from the manifests (listed below): ceso leaves them as they are.\n"
        }
        (false, true) => "No changes. The hosts match the manifests.\n",
        (false, false) => "ceso will perform the following actions:\n",
        (true, true) => "The plan has errors (listed below): nothing will be changed.\n",
        (true, false) => {
            "The plan has errors (listed below): nothing will be changed until they are fixed.\nThen ceso would perform these actions:\n"
        }
    });
    for change in acting {
        out.push('\n');
        render_change(&mut out, change, None, colour);
    }
    render_suspended(&mut out, &plan.suspended, colour);
    let kept: Vec<&ResourceChange> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::NoOp && !c.notes.is_empty())
        .collect();
    if !kept.is_empty() {
        let _ = writeln!(out, "\n{}", colour.paint(bold, "Kept on the host:"));
        for change in kept {
            for note in &change.notes {
                let _ = writeln!(out, "  {} (host {}): {note}", change.address, change.host);
            }
        }
    }
    if !plan.unmanaged.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            colour.paint(bold, "Unmanaged VMs (not created by ceso, never changed):")
        );
        for vm in &plan.unmanaged {
            let _ = match &vm.template {
                Some(template) => writeln!(
                    out,
                    "  {} ({}) on host {}: holds the disk of template {template}",
                    vm.name, vm.moref, vm.host
                ),
                None => writeln!(out, "  {} ({}) on host {}", vm.name, vm.moref, vm.host),
            };
        }
    }
    render_backups(&mut out, &plan.backups, colour);
    if !plan.diagnostics.is_empty() {
        out.push('\n');
        for diagnostic in &plan.diagnostics {
            let _ = writeln!(out, "{diagnostic}");
        }
    }
    let s = plan.summary;
    let suspended = match s.suspended {
        0 => String::new(),
        n => format!("; {n} suspended (left as they are)"),
    };
    let _ = writeln!(
        out,
        "\n{} {} to create, {} to update, {} to replace, {} to delete{suspended}.",
        colour.paint(bold, "Plan:"),
        s.create,
        s.update,
        s.replace,
        s.delete
    );
    out
}

/// The resources `suspend: true` pauses: what would be done to those that differ, in full (so
/// drift stays visible), and one line for each of the others.
fn render_suspended(out: &mut String, suspended: &[SuspendedChange], colour: Colour) {
    if suspended.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\n{}",
        colour.paint(
            Style::new().bold(),
            "Suspended (`suspend: true`): ceso changes nothing here; what it would do otherwise:"
        )
    );
    for entry in suspended.iter().filter(|s| s.differs()) {
        out.push('\n');
        render_change(out, &entry.change, Some(&entry.suspended_by), colour);
    }
    let unchanged: Vec<&SuspendedChange> = suspended.iter().filter(|s| !s.differs()).collect();
    if !unchanged.is_empty() {
        out.push('\n');
    }
    for entry in unchanged {
        let change = &entry.change;
        let matches = !change.undeclared && change.notes.is_empty();
        let _ = writeln!(
            out,
            "    {} (host {}): suspended by {}{}",
            change.address,
            change.host,
            entry.suspended_by,
            if matches {
                ", matches the manifests"
            } else {
                ""
            }
        );
        for note in &change.notes {
            let _ = writeln!(out, "      # {note}");
        }
    }
}

/// The backup outlook: due backups, retention deletions, the next scheduled ones, and the VMs
/// whose backups are paused by `suspend: true`.
fn render_backups(out: &mut String, backups: &super::backups::BackupOutlook, colour: Colour) {
    if backups.is_empty() {
        return;
    }
    let bold = Style::new().bold();
    let time = |t: &jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    let _ = writeln!(
        out,
        "\n{}",
        colour.paint(
            bold,
            "Backups (due ones taken by `ceso backup run`, expired ones deleted by `ceso backup prune`; apply does neither):"
        )
    );
    for due in &backups.due {
        let _ = match &due.last {
            Some(last) => writeln!(
                out,
                "  due:     {} (policy {}): scheduled {}, last backup {}",
                due.vm,
                due.policy,
                time(&due.due_since),
                time(last)
            ),
            None => writeln!(
                out,
                "  due:     {} (policy {}): never backed up",
                due.vm, due.policy
            ),
        };
    }
    for expiring in &backups.expiring {
        let _ = writeln!(
            out,
            "  expires: {} ({} taken {}): retention of policy {} no longer keeps it",
            expiring.id,
            expiring.vm,
            time(&expiring.taken),
            expiring.policy
        );
    }
    for next in &backups.upcoming {
        let _ = writeln!(
            out,
            "  next:    {} (policy {}) at {}",
            next.vm,
            next.policy,
            time(&next.at)
        );
    }
    for paused in &backups.suspended {
        let _ = writeln!(
            out,
            "  paused:  {} (policy {}): suspended by {}, no backup is due",
            paused.vm, paused.policy, paused.suspended_by
        );
    }
}

/// One change; `suspended_by` names what suspends the resource, whose change is then only
/// what would be done.
fn render_change(
    out: &mut String,
    change: &ResourceChange,
    suspended_by: Option<&str>,
    colour: Colour,
) {
    let style = style_of(change.action);
    let mut headline = format!(
        "  # {} {} {} (host {})",
        change.address,
        if suspended_by.is_some() {
            "would be"
        } else {
            "will be"
        },
        change.action.verb(),
        change.host
    );
    if change.fields.iter().any(|f| f.drift) {
        headline.push_str(": it was changed outside ceso");
    }
    if let Some(by) = suspended_by {
        let _ = write!(headline, "; suspended by {by}");
    }
    let _ = writeln!(out, "{}", colour.paint(Style::new().bold(), &headline));
    if change.power_cycle && suspended_by.is_none() {
        let _ = writeln!(
            out,
            "  # the VM is shut down for this change (through VMware Tools; a hard power-off only where\n  # `shutdown.force` or --force-power-off allows it) and powered on again if declared on,\n  # even if the change fails"
        );
    }
    for note in &change.notes {
        let _ = writeln!(out, "  # {note}");
    }
    let _ = writeln!(
        out,
        "{} {}{}",
        colour.paint(style, &format!("{:>3}", change.action.glyph())),
        change.address,
        if suspended_by.is_some() {
            " (suspended: not changed)"
        } else {
            ""
        }
    );
    let width = change
        .fields
        .iter()
        .map(|f| f.field.len())
        .max()
        .unwrap_or(0);
    for field in &change.fields {
        let (glyph, value) = match (&field.before, &field.after) {
            (None, Some(after)) => ("+", after.clone()),
            (Some(before), None) => ("-", before.clone()),
            (Some(before), Some(after)) => ("~", format!("{before} → {after}")),
            (None, None) => continue,
        };
        let glyph_style = match glyph {
            "+" => style_of(Action::Create),
            "-" => style_of(Action::Delete),
            _ => style_of(Action::Update),
        };
        let remarks = field.remarks();
        let remarks = if remarks.is_empty() {
            String::new()
        } else {
            format!("   # {}", remarks.join(", "))
        };
        let _ = writeln!(
            out,
            "      {} {:width$} = {value}{remarks}",
            colour.paint(glyph_style, glyph),
            field.field,
        );
    }
}

/// Renders the plan as the versioned JSON document (`docs/plan-format.md`).
pub fn json(plan: &Plan) -> String {
    let mut text = serde_json::to_string_pretty(plan).expect("plans serialize");
    text.push('\n');
    text
}
