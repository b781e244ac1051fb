//! Starting `*_Task` methods and waiting for their outcome.

use std::time::{Duration, Instant};

use super::EsxiClient;
use super::error::EsxiError;
use super::fault::{LocalizedFault, RESTRICTED_VERSION};
use super::properties::ObjectContent;
use super::xml::{Element, MoRef};

/// First pause between polls of a running task.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between polls.
const MAX_BACKOFF: Duration = Duration::from_secs(1);
/// How often a long task (a large disk copy) reports its progress.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(10);

/// One progress line of a long task, e.g. `CopyVirtualDisk_Task on web-02: 45 % after 30 s`.
pub(crate) fn task_progress_line(
    method: &str,
    entity: &str,
    percent: Option<u32>,
    waited: Duration,
) -> String {
    let done = percent.map_or_else(|| "running".to_owned(), |p| format!("{} %", p.min(100)));
    format!("{method} on {entity}: {done} after {} s", waited.as_secs())
}

/// State of a task as read from `info`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TaskState {
    /// `queued` or `running`.
    Pending,
    /// `success`, with `info.result` if any.
    Success(Option<Element>),
    /// `error`, with `info.error`.
    Error(LocalizedFault),
}

/// Reads `info.state`, `info.error` and `info.result` of a task object.
pub(crate) fn task_state(o: &ObjectContent) -> TaskState {
    let info = o.prop("info");
    let field = |name: &str| {
        o.prop(&format!("info.{name}"))
            .or_else(|| info.and_then(|i| i.child(name)))
    };
    match field("state").map(|s| s.text.trim()) {
        Some("success") => TaskState::Success(field("result").cloned()),
        Some("error") => {
            TaskState::Error(field("error").map(LocalizedFault::from_element).unwrap_or(
                LocalizedFault {
                    fault: "Unknown".into(),
                    message: "task failed without details".into(),
                },
            ))
        }
        _ => TaskState::Pending,
    }
}

impl EsxiClient {
    /// Calls a `*_Task` method and waits for the task. Returns `info.result`.
    pub(crate) async fn run_task(
        &self,
        method: &str,
        inner: &str,
        entity: &str,
    ) -> Result<Option<Element>, EsxiError> {
        let resp = self.call(method, inner).await?;
        let task = resp
            .child("returnval")
            .and_then(Element::as_moref)
            .ok_or_else(|| EsxiError::Protocol {
                address: self.transport.address().to_owned(),
                method: method.to_owned(),
                message: "no task in the response".into(),
            })?;
        self.wait_task(&task, method, entity).await
    }

    /// Polls the task's `info` until it finishes or the task timeout passes.
    ///
    /// The first poll is immediate (the simulator and fast operations are already done); then
    /// the pause grows from 100 ms to 1 s. A task still running after ten seconds (a large disk
    /// copy) reports its `info.progress` every ten seconds (log and stderr).
    pub(crate) async fn wait_task(
        &self,
        task: &MoRef,
        method: &str,
        entity: &str,
    ) -> Result<Option<Element>, EsxiError> {
        let start = Instant::now();
        let deadline = start + self.task_timeout;
        let mut next_progress = start + PROGRESS_INTERVAL;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let info = self
                .retrieve_one(
                    task,
                    &["info.state", "info.error", "info.result", "info.progress"],
                )
                .await?
                .ok_or_else(|| EsxiError::Protocol {
                    address: self.transport.address().to_owned(),
                    method: method.to_owned(),
                    message: format!("task {} vanished", task.value),
                })?;
            match task_state(&info) {
                TaskState::Success(result) => return Ok(result),
                TaskState::Error(f) if f.fault == RESTRICTED_VERSION => {
                    return Err(EsxiError::RestrictedVersion {
                        address: self.transport.address().to_owned(),
                        method: method.to_owned(),
                    });
                }
                TaskState::Error(f) => {
                    return Err(EsxiError::TaskFailed {
                        task: method.to_owned(),
                        entity: entity.to_owned(),
                        fault: f.fault,
                        message: f.message,
                    });
                }
                TaskState::Pending => {}
            }
            let now = Instant::now();
            if now >= next_progress {
                let percent = info
                    .prop_text("info.progress")
                    .and_then(|p| p.trim().parse().ok());
                let line = task_progress_line(method, entity, percent, now - start);
                tracing::info!("{line}");
                eprintln!("{line}");
                next_progress += PROGRESS_INTERVAL;
            }
            if now >= deadline {
                return Err(EsxiError::TaskTimeout {
                    task: method.to_owned(),
                    entity: entity.to_owned(),
                    timeout: self.task_timeout,
                });
            }
            tokio::time::sleep(backoff.min(deadline - now)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::properties::parse_retrieve_response;

    fn objects(xml: &str) -> Vec<ObjectContent> {
        parse_retrieve_response(xml).0
    }

    #[test]
    fn task_error_from_whole_info() {
        let o = objects(include_str!("testdata/task_error.xml"));
        assert_eq!(
            task_state(&o[0]),
            TaskState::Error(LocalizedFault {
                fault: "InvalidPowerState".into(),
                message: "*types.InvalidPowerState".into()
            })
        );
    }

    #[test]
    fn task_states_from_sub_paths() {
        let env = |props: &str| {
            format!(
                r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema"><soapenv:Body><RetrievePropertiesExResponse xmlns="urn:vim25"><returnval><objects><obj type="Task">task-7</obj>{props}</objects></returnval></RetrievePropertiesExResponse></soapenv:Body></soapenv:Envelope>"#
            )
        };
        let xsi = r#"xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance""#;
        let running = env(&format!(
            r#"<propSet><name>info.state</name><val {xsi} XMLSchema-instance:type="TaskInfoState">running</val></propSet>"#
        ));
        assert_eq!(task_state(&objects(&running)[0]), TaskState::Pending);

        let done = env(&format!(
            r#"<propSet><name>info.result</name><val {xsi} XMLSchema-instance:type="ManagedObjectReference" type="VirtualMachine">vm-42</val></propSet><propSet><name>info.state</name><val {xsi} XMLSchema-instance:type="TaskInfoState">success</val></propSet>"#
        ));
        let TaskState::Success(Some(result)) = task_state(&objects(&done)[0]) else {
            panic!("not a success with result")
        };
        assert_eq!(
            result.as_moref(),
            Some(MoRef::new("VirtualMachine", "vm-42"))
        );

        let failed = env(&format!(
            r#"<propSet><name>info.error</name><val {xsi} XMLSchema-instance:type="LocalizedMethodFault"><fault XMLSchema-instance:type="RestrictedVersion"></fault><localizedMessage>Current license or ESXi version prohibits execution of the requested operation.</localizedMessage></val></propSet><propSet><name>info.state</name><val {xsi} XMLSchema-instance:type="TaskInfoState">error</val></propSet>"#
        ));
        let TaskState::Error(f) = task_state(&objects(&failed)[0]) else {
            panic!("not an error")
        };
        assert_eq!(f.fault, RESTRICTED_VERSION);
        assert!(f.message.starts_with("Current license"));
    }

    #[test]
    fn progress_line_names_the_task_and_how_far_it_is() {
        assert_eq!(
            task_progress_line(
                "CopyVirtualDisk_Task",
                "web-02",
                Some(45),
                Duration::from_millis(30_400)
            ),
            "CopyVirtualDisk_Task on web-02: 45 % after 30 s"
        );
        assert_eq!(
            task_progress_line(
                "CopyVirtualDisk_Task",
                "web-02",
                None,
                Duration::from_secs(10)
            ),
            "CopyVirtualDisk_Task on web-02: running after 10 s"
        );
    }
}
