//! The plan as Markdown, for a pull-request comment.

use super::Plan;

/// Renders `plan` as Markdown.
pub fn markdown(plan: &Plan) -> String {
    let _ = plan;
    String::new()
}
