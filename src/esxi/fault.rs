//! vSphere faults as the wire carries them: SOAP faults (HTTP 500) and the
//! `LocalizedMethodFault` of a failed task or a `missingSet` entry.

use super::xml::Element;

/// Fault type of an unauthenticated or expired session.
pub(crate) const NOT_AUTHENTICATED: &str = "NotAuthenticated";
/// Fault type of wrong credentials.
pub(crate) const INVALID_LOGIN: &str = "InvalidLogin";
/// Fault type of a free (read-only API) licence.
pub(crate) const RESTRICTED_VERSION: &str = "RestrictedVersion";

/// A SOAP fault: `<soapenv:Fault><faultstring/><detail><XFault xsi:type="X"/></detail>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SoapFault {
    /// vim25 fault type name, e.g. `InvalidPowerState` (empty when the server sent no detail).
    pub fault: String,
    /// The fault string, or a summary of the detail when the server left it empty.
    pub message: String,
}

impl SoapFault {
    /// Reads a `<Fault>` element.
    pub fn from_element(fault: &Element) -> Self {
        let detail = fault.child("detail").and_then(|d| d.children.first());
        let fault_type = detail.map(fault_type_of).unwrap_or_default();
        let faultstring = fault.child_text("faultstring").unwrap_or_default().trim();
        let message = if faultstring.is_empty() {
            detail.map(summarize_detail).unwrap_or_default()
        } else {
            faultstring.to_owned()
        };
        Self {
            fault: fault_type,
            message,
        }
    }
}

/// The type name of a fault object: its `xsi:type`, else its element name minus `Fault`
/// (`<InvalidLoginFault>` → `InvalidLogin`).
pub(crate) fn fault_type_of(el: &Element) -> String {
    match el.type_name() {
        Some(t) => t.to_owned(),
        None => el.name.strip_suffix("Fault").unwrap_or(&el.name).to_owned(),
    }
}

/// A `LocalizedMethodFault` (`<error><fault xsi:type="X">…</fault><localizedMessage/></error>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalizedFault {
    /// vim25 fault type name.
    pub fault: String,
    /// `localizedMessage`, or a summary of the fault's fields when it is empty.
    pub message: String,
}

impl LocalizedFault {
    /// Reads a `LocalizedMethodFault` element.
    pub fn from_element(el: &Element) -> Self {
        let inner = el.child("fault");
        let fault = inner
            .map(fault_type_of)
            .unwrap_or_else(|| "Unknown".to_owned());
        let localized = el.child_text("localizedMessage").unwrap_or_default().trim();
        let message = if localized.is_empty() {
            inner.map(summarize_detail).unwrap_or_default()
        } else {
            localized.to_owned()
        };
        Self { fault, message }
    }
}

/// `field=value` pairs of a fault's simple fields, for faults that come without a message.
fn summarize_detail(el: &Element) -> String {
    el.children
        .iter()
        .filter(|c| c.children.is_empty() && !c.text.trim().is_empty())
        .map(|c| format!("{}={}", c.name, c.text.trim()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::envelope::{Reply, unwrap_body};
    use crate::esxi::xml::parse;

    #[test]
    fn soap_fault_with_xsi_type() {
        let root = parse(include_str!("testdata/fault_invalid_login.xml")).expect("xml");
        let Reply::Fault(f) = unwrap_body(root).expect("body") else {
            panic!("not a fault")
        };
        assert_eq!(f.fault, "InvalidLogin");
        assert_eq!(f.message, "Login failure");
    }

    #[test]
    fn soap_fault_without_faultstring_summarizes_detail() {
        let root = parse(include_str!("testdata/fault_not_authenticated.xml")).expect("xml");
        let Reply::Fault(f) = unwrap_body(root).expect("body") else {
            panic!("not a fault")
        };
        assert_eq!(f.fault, NOT_AUTHENTICATED);
        assert_eq!(f.message, "object=ServiceInstance privilegeId=System.View");
    }

    #[test]
    fn fault_type_falls_back_to_element_name() {
        let el = parse("<RestrictedVersionFault xmlns=\"urn:vim25\"/>").expect("xml");
        assert_eq!(fault_type_of(&el), RESTRICTED_VERSION);
    }
}
