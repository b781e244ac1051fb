//! Service content, login, transparent re-login and logout.

use std::sync::atomic::Ordering;

use super::EsxiClient;
use super::envelope::{Reply, method_body};
use super::error::EsxiError;
use super::fault::{INVALID_LOGIN, NOT_AUTHENTICATED, RESTRICTED_VERSION, SoapFault};
use super::properties::{ObjectSink, has_not_authenticated};
use super::transport::Transport;
use super::xml::{Detach, Element, MoRef};
use crate::host::HostAbout;

/// The parts of `ServiceContent` the client uses.
#[derive(Debug, Clone)]
pub(crate) struct ServiceContent {
    pub root_folder: MoRef,
    pub property_collector: MoRef,
    pub view_manager: MoRef,
    pub session_manager: MoRef,
    /// `VirtualDiskManager` (host-side disk copies); absent on hosts without one.
    pub virtual_disk_manager: Option<MoRef>,
    /// `OvfManager` (OVA import); absent on hosts without one.
    pub ovf_manager: Option<MoRef>,
    /// `FileManager` (datastore folders); absent on hosts without one.
    pub file_manager: Option<MoRef>,
    pub about: HostAbout,
}

impl ServiceContent {
    /// Reads `RetrieveServiceContentResponse/returnval`.
    pub fn from_response(resp: &Element) -> Result<Self, String> {
        let rv = resp.child("returnval").ok_or("no returnval")?;
        let moref = |name: &str| {
            rv.child(name)
                .and_then(Element::as_moref)
                .ok_or_else(|| format!("no {name}"))
        };
        let about = rv.child("about").ok_or("no about")?;
        let text = |name: &str| about.child_text(name).unwrap_or_default().to_owned();
        Ok(Self {
            root_folder: moref("rootFolder")?,
            property_collector: moref("propertyCollector")?,
            view_manager: moref("viewManager")?,
            session_manager: moref("sessionManager")?,
            virtual_disk_manager: moref("virtualDiskManager").ok(),
            ovf_manager: moref("ovfManager").ok(),
            file_manager: moref("fileManager").ok(),
            about: HostAbout {
                full_name: text("fullName"),
                api_version: text("apiVersion"),
                api_type: text("apiType"),
            },
        })
    }
}

/// Fetches the service content (no session needed).
pub(crate) async fn retrieve_service_content(
    transport: &Transport,
) -> Result<ServiceContent, EsxiError> {
    const METHOD: &str = "RetrieveServiceContent";
    let w = method_body(&MoRef::new("ServiceInstance", "ServiceInstance"));
    match transport.post(METHOD, &w.finish(), None).await? {
        Reply::Response(resp) => {
            ServiceContent::from_response(&resp).map_err(|message| EsxiError::Protocol {
                address: transport.address().to_owned(),
                method: METHOD.to_owned(),
                message,
            })
        }
        Reply::Fault(f) => Err(fault_error(transport.address(), METHOD, f)),
    }
}

/// Turns a SOAP fault into the matching error variant.
pub(crate) fn fault_error(address: &str, method: &str, f: SoapFault) -> EsxiError {
    if f.fault == RESTRICTED_VERSION {
        EsxiError::RestrictedVersion {
            address: address.to_owned(),
            method: method.to_owned(),
        }
    } else {
        EsxiError::Fault {
            method: method.to_owned(),
            fault: f.fault,
            message: f.message,
        }
    }
}

impl EsxiClient {
    /// Calls a vim25 method. `inner` is the XML inside the method element (`_this` first).
    ///
    /// When the session turns out to be gone (`NotAuthenticated`), logs in again and retries
    /// the call once.
    pub(crate) async fn call(&self, method: &str, inner: &str) -> Result<Element, EsxiError> {
        self.call_with(method, inner, None).await
    }

    /// [`call`](Self::call) for the property collector, whose result objects go to `objects`
    /// one by one while the response is parsed (the returned element lacks them). On a retry
    /// the sink is reset first, so it ends up holding the objects of the successful attempt.
    pub(crate) async fn call_with(
        &self,
        method: &str,
        inner: &str,
        mut objects: Option<&mut dyn ObjectSink>,
    ) -> Result<Element, EsxiError> {
        let generation = self.session_generation.load(Ordering::SeqCst);
        let first = objects
            .as_mut()
            .map(|sink| &mut **sink as &mut dyn ObjectSink);
        match self.call_once(method, inner, first).await {
            Err(e) if e.is_not_authenticated() && self.logged_in.load(Ordering::SeqCst) => {
                tracing::debug!(method, "session not authenticated; logging in again");
                self.relogin(generation).await?;
                self.call_once(method, inner, objects).await
            }
            other => other,
        }
    }

    /// One request, without re-login.
    async fn call_once(
        &self,
        method: &str,
        inner: &str,
        mut objects: Option<&mut dyn ObjectSink>,
    ) -> Result<Element, EsxiError> {
        if let Some(sink) = objects.as_deref_mut() {
            sink.reset();
        }
        let detach = objects.as_mut().map(|sink| &mut **sink as &mut dyn Detach);
        match self.transport.post(method, inner, detach).await? {
            Reply::Response(resp) => {
                // The simulator answers an unauthenticated RetrievePropertiesEx with HTTP 200
                // and NotAuthenticated in every missingSet; real hosts send a fault.
                if method.ends_with("RetrievePropertiesEx")
                    && (objects.is_some_and(|sink| sink.not_authenticated())
                        || has_not_authenticated(&resp))
                {
                    return Err(EsxiError::Fault {
                        method: method.to_owned(),
                        fault: NOT_AUTHENTICATED.to_owned(),
                        message: "missingSet reports NotAuthenticated".to_owned(),
                    });
                }
                Ok(resp)
            }
            Reply::Fault(f) => Err(fault_error(self.transport.address(), method, f)),
        }
    }

    /// Logs in again unless another caller already did since `generation` was read.
    async fn relogin(&self, generation: u64) -> Result<(), EsxiError> {
        let _guard = self.relogin_lock.lock().await;
        if self.session_generation.load(Ordering::SeqCst) != generation {
            return Ok(());
        }
        self.login().await
    }

    /// `Login` with a fresh cookie jar (a host refuses Login on a live session).
    pub(crate) async fn login(&self) -> Result<(), EsxiError> {
        const METHOD: &str = "Login";
        self.transport.clear_cookies();
        let mut w = method_body(&self.service.session_manager);
        w.leaf("userName", &self.username)
            .leaf("password", self.password.expose());
        match self.call_once(METHOD, &w.finish(), None).await {
            Ok(_) => {
                self.session_generation.fetch_add(1, Ordering::SeqCst);
                self.logged_in.store(true, Ordering::SeqCst);
                Ok(())
            }
            Err(EsxiError::Fault { fault, .. }) if fault == INVALID_LOGIN => {
                Err(EsxiError::LoginFailed {
                    address: self.transport.address().to_owned(),
                    username: self.username.clone(),
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Ends the session. An already expired session counts as logged out.
    pub async fn logout(&self) -> Result<(), EsxiError> {
        self.logged_in.store(false, Ordering::SeqCst);
        let w = method_body(&self.service.session_manager);
        let result = self.call_once("Logout", &w.finish(), None).await;
        self.transport.clear_cookies();
        match result {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_authenticated() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::envelope::unwrap_body;
    use crate::esxi::xml::parse;

    #[test]
    fn service_content_parses() {
        let root = parse(include_str!("testdata/service_content.xml")).expect("xml");
        let Reply::Response(resp) = unwrap_body(root).expect("body") else {
            panic!("fault")
        };
        let sc = ServiceContent::from_response(&resp).expect("service content");
        assert_eq!(sc.root_folder, MoRef::new("Folder", "ha-folder-root"));
        assert_eq!(
            sc.property_collector,
            MoRef::new("PropertyCollector", "ha-property-collector")
        );
        assert_eq!(sc.view_manager, MoRef::new("ViewManager", "ViewManager"));
        assert_eq!(
            sc.session_manager,
            MoRef::new("SessionManager", "ha-sessionmgr")
        );
        assert_eq!(
            sc.virtual_disk_manager,
            Some(MoRef::new("VirtualDiskManager", "ha-vdiskmanager"))
        );
        assert_eq!(
            sc.ovf_manager,
            Some(MoRef::new("OvfManager", "ha-ovf-manager"))
        );
        assert_eq!(sc.about.full_name, "VMware ESXi 6.5.0 build-5969303");
        assert_eq!(sc.about.api_version, "6.5");
        assert_eq!(sc.about.api_type, "HostAgent");
    }

    #[test]
    fn restricted_version_gets_its_own_variant() {
        let f = SoapFault {
            fault: RESTRICTED_VERSION.into(),
            message:
                "Current license or ESXi version prohibits execution of the requested operation."
                    .into(),
        };
        let e = fault_error("https://esxi-01/sdk", "PowerOnVM_Task", f);
        assert!(matches!(e, EsxiError::RestrictedVersion { .. }));
        let s = e.to_string();
        assert!(
            s.contains("free ESXi licence") && s.contains("paid licence"),
            "{s}"
        );
    }
}
