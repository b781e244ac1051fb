//! The plan as Markdown, for a pull-request (GitHub) or merge-request (GitLab) comment: a
//! heading with the summary, the errors and warnings, each resource's change with its fields
//! (folded into a `<details>` element when long), what `suspend: true` leaves as it is, what is
//! kept, the steps, the backup outlook and the unmanaged VMs.
//!
//! Every value that comes from the manifests or the hosts is written as a code span (literal:
//! no Markdown, HTML, link or @mention inside) and ceso's own sentences are escaped, so nothing
//! in a plan can change the comment's structure. The text starts with [`MARKER`], by which a
//! workflow finds its previous comment to update it, and stays within the comment size limit:
//! past it, whole blocks are left out and a note says what.

use std::fmt::Write as _;

use super::backups::BackupOutlook;
use super::model::{
    Action, FieldChange, Plan, ResourceChange, Step, Summary, SuspendedChange, UnmanagedVm,
};
use crate::diagnostic::{Diagnostic, Severity, has_errors};

/// The first line of every rendering (an HTML comment, invisible once rendered): a workflow
/// looks for it to update its previous plan comment instead of adding one more.
pub const MARKER: &str = "<!-- ceso-plan -->";

/// The longest comment GitHub accepts, in characters. [`markdown`] stays within it.
pub const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// A resource's field changes are folded into a collapsed `<details>` element when there are
/// more than this many (a creation or deletion lists every field).
pub const FIELDS_SHOWN_OPEN: usize = 6;

/// Room kept for the note that says what was left out when the plan does not fit.
const TRUNCATION_NOTE_ROOM: usize = 1024;

/// Shown instead of a value that looks like a secret.
const REDACTED: &str = "(redacted)";

/// Renders `plan` as Markdown within GitHub's comment limit ([`GITHUB_COMMENT_LIMIT`]).
pub fn markdown(plan: &Plan) -> String {
    markdown_within(plan, GITHUB_COMMENT_LIMIT)
}

/// Renders `plan` as Markdown of at most `limit` bytes (so at most `limit` characters however
/// they are counted; only a limit too small for the heading itself is exceeded). When the plan
/// is longer, whole blocks are left out from the first one that does not fit, and a note at the
/// end says what is missing and where to see all of it.
pub fn markdown_within(plan: &Plan, limit: usize) -> String {
    let whole = render(plan, limit);
    if whole.omitted.is_empty() {
        return whole.text;
    }
    let mut cut = render(plan, limit.saturating_sub(TRUNCATION_NOTE_ROOM));
    cut.text.push_str(&truncation_note(&cut.omitted, limit));
    cut.text
}

fn render(plan: &Plan, budget: usize) -> Document {
    let mut doc = Document::new(budget);
    doc.text.push_str(&heading(plan));
    let (errors, warnings): (Vec<&Diagnostic>, Vec<&Diagnostic>) = plan
        .diagnostics
        .iter()
        .partition(|d| d.severity == Severity::Error);
    if !errors.is_empty() {
        doc.section(
            ("error", "errors"),
            format!("\n### ❌ Errors ({})\n\n", errors.len()),
            errors.iter().map(|d| diagnostic_item(d)).collect(),
            "",
        );
    }
    if !warnings.is_empty() {
        doc.section(
            ("warning", "warnings"),
            format!("\n### ⚠️ Warnings ({})\n\n", warnings.len()),
            warnings.iter().map(|d| diagnostic_item(d)).collect(),
            "",
        );
    }
    let acting: Vec<&ResourceChange> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .collect();
    if !acting.is_empty() {
        doc.section(
            ("resource change", "resource changes"),
            "\n### Changes\n".to_owned(),
            acting.iter().map(|c| resource_block(c, None)).collect(),
            "",
        );
    }
    if !plan.suspended.is_empty() {
        doc.section(
            ("suspended resource", "suspended resources"),
            "\n### Suspended (`suspend: true`)\n\nceso changes nothing here; what it would do otherwise:\n".to_owned(),
            suspended_blocks(&plan.suspended),
            "",
        );
    }
    let kept: Vec<String> = plan
        .changes
        .iter()
        .filter(|c| c.action == Action::NoOp)
        .flat_map(|c| c.notes.iter().map(move |note| kept_item(c, note)))
        .collect();
    if !kept.is_empty() {
        doc.section(
            ("note on a kept VM", "notes on kept VMs"),
            "\n### Kept on the host\n\n".to_owned(),
            kept,
            "",
        );
    }
    if !plan.steps.is_empty() {
        doc.section(
            ("step", "steps"),
            format!(
                "\n### Steps\n\n<details><summary>{}, run in dependency order</summary>\n\n| # | Step | Host | Waits for |\n|--:|---|---|---|\n",
                counted(plan.steps.len(), ("step", "steps"))
            ),
            plan.steps.iter().map(step_row).collect(),
            "\n</details>\n",
        );
    }
    if !plan.backups.is_empty() {
        doc.section(
            ("backup line", "backup lines"),
            "\n### Backups\n\nDue ones are taken by `ceso backup run`, expired ones deleted by `ceso backup prune`; apply does neither.\n\n| | VM | Policy | When |\n|---|---|---|---|\n".to_owned(),
            backup_rows(&plan.backups),
            "",
        );
    }
    if !plan.unmanaged.is_empty() {
        doc.section(
            ("unmanaged VM", "unmanaged VMs"),
            format!(
                "\n### Unmanaged VMs\n\n<details><summary>{} not created by ceso (never changed)</summary>\n\n",
                counted(plan.unmanaged.len(), ("VM", "VMs"))
            ),
            plan.unmanaged.iter().map(unmanaged_item).collect(),
            "\n</details>\n",
        );
    }
    doc
}

/// The text being built, within a byte budget, and what did not fit.
struct Document {
    text: String,
    budget: usize,
    /// Sections cut short: what their blocks are, and how many were left out.
    omitted: Vec<(Noun, usize)>,
}

impl Document {
    fn new(budget: usize) -> Self {
        Self {
            text: String::new(),
            budget,
            omitted: Vec::new(),
        }
    }

    /// Adds a section: `open` (its heading, the start of a table or of a `<details>` element),
    /// as many of `blocks` as fit, then `close`. Once one block did not fit, nothing more is
    /// added (not even a later, shorter one), so what is shown is a clean beginning.
    fn section(&mut self, what: Noun, open: String, blocks: Vec<String>, close: &str) {
        let Some(first) = blocks.first() else {
            return;
        };
        let fits = |text: &String, more: usize| text.len() + more + close.len() <= self.budget;
        if !self.omitted.is_empty() || !fits(&self.text, open.len() + first.len()) {
            self.omitted.push((what, blocks.len()));
            return;
        }
        self.text.push_str(&open);
        for (index, block) in blocks.iter().enumerate() {
            if !fits(&self.text, block.len()) {
                self.omitted.push((what, blocks.len() - index));
                break;
            }
            self.text.push_str(block);
        }
        self.text.push_str(close);
    }
}

/// A noun, singular and plural.
type Noun = (&'static str, &'static str);

/// `1 step`, `2 steps`.
fn counted(count: usize, (singular, plural): Noun) -> String {
    format!("{count} {}", if count == 1 { singular } else { plural })
}

fn truncation_note(omitted: &[(Noun, usize)], limit: usize) -> String {
    let missing: Vec<String> = omitted
        .iter()
        .map(|&(what, count)| counted(count, what))
        .collect();
    format!(
        "\n---\n\n**This plan is too long for one comment ({limit} characters) and was cut here.** Not shown: {}. `ceso plan` shows all of it, and the saved plan file (`ceso plan --out FILE`) holds all of it.\n",
        missing.join(", ")
    )
}

fn summary_sentence(summary: Summary) -> String {
    let mut sentence = format!(
        "{} to create, {} to update, {} to replace, {} to delete",
        summary.create, summary.update, summary.replace, summary.delete
    );
    if summary.suspended > 0 {
        let _ = write!(
            sentence,
            "; {} suspended (left as they are)",
            summary.suspended
        );
    }
    sentence
}

fn heading(plan: &Plan) -> String {
    let mut out = format!("{MARKER}\n");
    let blocked = has_errors(&plan.diagnostics);
    let summary = summary_sentence(plan.summary);
    let _ = match (blocked, plan.has_changes()) {
        (true, true) => writeln!(
            out,
            "## ❌ ceso plan has errors: nothing can be applied\n\nOnce they are fixed, the plan would be: {summary}."
        ),
        (true, false) => writeln!(out, "## ❌ ceso plan has errors: nothing can be applied"),
        (false, true) => writeln!(out, "## ceso plan: {summary}"),
        (false, false) if plan.suspended.iter().any(SuspendedChange::differs) => writeln!(
            out,
            "## ✅ ceso plan: no changes\n\nSuspended resources differ from the manifests (listed below): ceso leaves them as they are."
        ),
        (false, false) => writeln!(
            out,
            "## ✅ ceso plan: no changes\n\nThe hosts match the manifests."
        ),
    };
    let mut about = format!(
        "Plan {} made {} by ceso {}",
        code(&plan.plan_id, Context::Line),
        code(&plan.created_at, Context::Line),
        code(&plan.ceso_version, Context::Line)
    );
    if let Some(inventory) = &plan.inventory {
        let _ = write!(
            about,
            " from {}",
            code(&inventory.display().to_string(), Context::Line)
        );
    }
    let _ = writeln!(out, "\n<sub>{about}.</sub>");
    out
}

fn diagnostic_item(diagnostic: &Diagnostic) -> String {
    let mut place = Vec::new();
    if let Some(resource) = &diagnostic.resource {
        place.push(code(resource, Context::Line));
    }
    if let Some(field) = &diagnostic.field {
        place.push(code(field, Context::Line));
    }
    if let Some(location) = &diagnostic.location {
        place.push(format!("at {}", code(&location.to_string(), Context::Line)));
    }
    let mut item = String::from("- ");
    if !place.is_empty() {
        let _ = write!(item, "{}: ", place.join(" "));
    }
    item.push_str(&prose(&diagnostic.message, Context::Line));
    item.push('\n');
    if let Some(hint) = &diagnostic.hint {
        let _ = writeln!(item, "  - hint: {}", prose(hint, Context::Line));
    }
    item
}

/// One resource's change; `suspended_by` names what suspends the resource, whose change is then
/// only what would be done.
fn resource_block(change: &ResourceChange, suspended_by: Option<&str>) -> String {
    let mut out = format!(
        "\n#### {} {} {} {} (host {})",
        code(change.action.glyph(), Context::Line),
        code(&change.address, Context::Line),
        if suspended_by.is_some() {
            "would be"
        } else {
            "will be"
        },
        change.action.verb(),
        code(&change.host, Context::Line)
    );
    if change.fields.iter().any(|f| f.drift) {
        out.push_str(": it was changed outside ceso");
    }
    if let Some(by) = suspended_by {
        let _ = write!(
            out,
            "; suspended by {}, not changed",
            code(by, Context::Line)
        );
    }
    out.push_str("\n\n");
    let mut remarks = Vec::new();
    if change.power_cycle && suspended_by.is_none() {
        remarks.push(
            "The VM is shut down for this change (through VMware Tools; a hard power-off only where `shutdown.force` or `--force-power-off` allows it) and powered on again if declared on, even if the change fails."
                .to_owned(),
        );
    }
    remarks.extend(change.notes.iter().map(|n| prose(n, Context::Line)));
    for remark in &remarks {
        let _ = writeln!(out, "- {remark}");
    }
    if !remarks.is_empty() {
        out.push('\n');
    }
    let rows: Vec<String> = change.fields.iter().filter_map(field_row).collect();
    if rows.is_empty() {
        return out;
    }
    let table = format!(
        "| | Field | Before | After | Remarks |\n|:-:|---|---|---|---|\n{}",
        rows.concat()
    );
    if rows.len() > FIELDS_SHOWN_OPEN {
        let _ = write!(
            out,
            "<details><summary>{}</summary>\n\n{table}\n</details>\n",
            counted(rows.len(), ("field", "fields"))
        );
    } else {
        out.push_str(&table);
    }
    out
}

fn field_row(field: &FieldChange) -> Option<String> {
    let glyph = match (&field.before, &field.after) {
        (None, Some(_)) => "+",
        (Some(_), None) => "-",
        (Some(_), Some(_)) => "~",
        (None, None) => return None,
    };
    let value = |value: &Option<String>| {
        value
            .as_deref()
            .map(|v| code(shown_value(&field.field, v), Context::Cell))
            .unwrap_or_default()
    };
    let remarks = field.remarks();
    Some(format!(
        "| `{glyph}` | {} | {} | {} | {} |\n",
        code(&field.field, Context::Cell),
        value(&field.before),
        value(&field.after),
        remarks.join(", ")
    ))
}

/// The plan holds no secrets (passwords are references, user-data only a digest); should a
/// field that looks like one ever carry a value, the comment still does not show it.
fn shown_value<'a>(field: &str, value: &'a str) -> &'a str {
    const SECRET_WORDS: &[&str] = &["password", "passwd", "secret", "token", "private"];
    let field = field.to_ascii_lowercase();
    if SECRET_WORDS.iter().any(|word| field.contains(word)) || value.contains("PRIVATE KEY") {
        REDACTED
    } else {
        value
    }
}

/// The suspended resources: those that differ in full (drift stays visible), then one line for
/// each of the others.
fn suspended_blocks(suspended: &[SuspendedChange]) -> Vec<String> {
    let differing = suspended
        .iter()
        .filter(|s| s.differs())
        .map(|s| resource_block(&s.change, Some(&s.suspended_by)));
    let unchanged = suspended.iter().filter(|s| !s.differs()).enumerate();
    let unchanged = unchanged.map(|(index, entry)| {
        let change = &entry.change;
        let matches = !change.undeclared && change.notes.is_empty();
        let mut item = format!(
            "{}- {} (host {}): suspended by {}{}\n",
            if index == 0 { "\n" } else { "" },
            code(&change.address, Context::Line),
            code(&change.host, Context::Line),
            code(&entry.suspended_by, Context::Line),
            if matches {
                ", matches the manifests"
            } else {
                ""
            }
        );
        for note in &change.notes {
            let _ = writeln!(item, "  - {}", prose(note, Context::Line));
        }
        item
    });
    differing.chain(unchanged).collect()
}

fn kept_item(change: &ResourceChange, note: &str) -> String {
    format!(
        "- {} (host {}): {}\n",
        code(&change.address, Context::Line),
        code(&change.host, Context::Line),
        prose(note, Context::Line)
    )
}

fn step_row(step: &Step) -> String {
    let list = |ids: &[usize]| {
        ids.iter()
            .map(usize::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut waits = Vec::new();
    if !step.depends_on.is_empty() {
        waits.push(format!("{} (succeeded)", list(&step.depends_on)));
    }
    if !step.after.is_empty() {
        waits.push(format!("{} (finished)", list(&step.after)));
    }
    if step.compensating {
        waits.push("runs even if the run is interrupted".to_owned());
    }
    format!(
        "| {} | {} | {} | {} |\n",
        step.id,
        prose(&step.description, Context::Cell),
        code(&step.host, Context::Cell),
        waits.join("; ")
    )
}

fn backup_rows(backups: &BackupOutlook) -> Vec<String> {
    let time = |t: &jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M UTC").to_string();
    let cell = |text: &str| code(text, Context::Cell);
    let mut rows = Vec::new();
    for due in &backups.due {
        let when = match &due.last {
            Some(last) => format!(
                "scheduled {}, last backup {}",
                time(&due.due_since),
                time(last)
            ),
            None => "never backed up".to_owned(),
        };
        rows.push(format!(
            "| due | {} | {} | {when} |\n",
            cell(&due.vm),
            cell(&due.policy)
        ));
    }
    for expiring in &backups.expiring {
        rows.push(format!(
            "| expires | {} | {} | backup {} taken {}: retention no longer keeps it |\n",
            cell(&expiring.vm),
            cell(&expiring.policy),
            cell(&expiring.id),
            time(&expiring.taken)
        ));
    }
    for next in &backups.upcoming {
        rows.push(format!(
            "| next | {} | {} | {} |\n",
            cell(&next.vm),
            cell(&next.policy),
            time(&next.at)
        ));
    }
    for paused in &backups.suspended {
        rows.push(format!(
            "| paused | {} | {} | suspended by {}, no backup is due |\n",
            cell(&paused.vm),
            cell(&paused.policy),
            cell(&paused.suspended_by)
        ));
    }
    rows
}

fn unmanaged_item(vm: &UnmanagedVm) -> String {
    let mut item = format!(
        "- {} ({}) on host {}",
        code(&vm.name, Context::Line),
        code(&vm.moref, Context::Line),
        code(&vm.host, Context::Line)
    );
    if let Some(template) = &vm.template {
        let _ = write!(
            item,
            ": holds the disk of template {}",
            code(template, Context::Line)
        );
    }
    item.push('\n');
    item
}

/// Where a piece of text goes: a table cell (where `|` ends the cell unless escaped) or a line
/// of a list or paragraph.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    Line,
    Cell,
}

/// `text` as a code span on one line: shown literally, whatever it holds.
fn code(text: &str, context: Context) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.trim().is_empty() {
        return "*(empty)*".to_owned();
    }
    let longest_run = flat.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    // A space on each side keeps a backtick at either end from joining the fence; CommonMark
    // strips exactly one such pair.
    let padded = if flat.starts_with('`') || flat.ends_with('`') || flat.starts_with(' ') {
        format!(" {flat} ")
    } else {
        flat
    };
    let body = match context {
        Context::Cell => padded.replace('|', "\\|"),
        Context::Line => padded,
    };
    format!("{fence}{body}{fence}")
}

/// One of ceso's sentences (which may quote names and paths): `code spans` in it stay code
/// spans, everything else is escaped so it cannot become a link, HTML, emphasis, a list or a
/// heading. Line breaks become `<br>`.
fn prose(text: &str, context: Context) -> String {
    let pieces: Vec<&str> = text.split('`').collect();
    // Balanced backticks (an odd number of pieces): every second piece is a code span.
    let spans = pieces.len() % 2 == 1;
    let mut out = String::new();
    for (index, piece) in pieces.iter().enumerate() {
        if spans && index % 2 == 1 {
            out.push_str(&code(piece, context));
            continue;
        }
        if !spans && index > 0 {
            out.push_str("\\`");
        }
        for (position, c) in piece.chars().enumerate() {
            let starts_line = index == 0 && position == 0;
            match c {
                '\\' | '*' | '_' | '[' | ']' | '<' | '>' | '~' | '&' | '|' => {
                    out.push('\\');
                    out.push(c);
                }
                '#' | '-' | '+' | '=' if starts_line => {
                    out.push('\\');
                    out.push(c);
                }
                '\n' => out.push_str("<br>"),
                '\r' => {}
                c if c.is_control() => out.push(' '),
                c => out.push(c),
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_with_backticks_and_pipes_stays_one_literal_cell() {
        assert_eq!(code("a|b", Context::Cell), "`a\\|b`");
        assert_eq!(code("a|b", Context::Line), "`a|b`");
        assert_eq!(code("x `y` z", Context::Line), "``x `y` z``");
        assert_eq!(code("`edge", Context::Line), "`` `edge ``");
        assert_eq!(code("two\nlines", Context::Line), "`two lines`");
        assert_eq!(code("", Context::Line), "*(empty)*");
    }

    #[test]
    fn prose_keeps_code_spans_and_escapes_the_rest() {
        assert_eq!(
            prose("run `ceso plan` <now> [x](y) *a*", Context::Line),
            "run `ceso plan` \\<now\\> \\[x\\](y) \\*a\\*"
        );
        assert_eq!(prose("odd ` tick", Context::Line), "odd \\` tick");
        assert_eq!(prose("# not a heading", Context::Line), "\\# not a heading");
        assert_eq!(prose("a|b", Context::Cell), "a\\|b");
        assert_eq!(prose("one\ntwo", Context::Line), "one<br>two");
    }

    #[test]
    fn secret_looking_fields_are_redacted() {
        assert_eq!(shown_value("cloudInit.password", "hunter2"), REDACTED);
        assert_eq!(shown_value("apiToken", "abc"), REDACTED);
        assert_eq!(
            shown_value("notes", "-----BEGIN OPENSSH PRIVATE KEY-----"),
            REDACTED
        );
        assert_eq!(shown_value("cpu", "4"), "4");
    }
}
