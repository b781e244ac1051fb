//! SOAP 1.1 envelopes: wrapping a vim25 method call, unwrapping the response body.

use super::fault::SoapFault;
use super::xml::{Element, MoRef, XmlWriter};

/// The vim25 XML namespace.
pub(crate) const VIM25_NS: &str = "urn:vim25";

/// Starts the body of a method call: `<_this type=...>` comes first in every vim25 method.
pub(crate) fn method_body(this: &MoRef) -> XmlWriter {
    let mut w = XmlWriter::new();
    w.moref("_this", this);
    w
}

/// Wraps the inner XML of a method element (`_this` and the arguments) in a SOAP envelope.
pub(crate) fn envelope(method: &str, inner: &str) -> String {
    let mut s = String::with_capacity(inner.len() + 400);
    s.push_str(concat!(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" "#,
        r#"xmlns:xsd="http://www.w3.org/2001/XMLSchema" "#,
        r#"xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">"#,
        "<soapenv:Body>"
    ));
    s.push('<');
    s.push_str(method);
    s.push_str(" xmlns=\"");
    s.push_str(VIM25_NS);
    s.push_str("\">");
    s.push_str(inner);
    s.push_str("</");
    s.push_str(method);
    s.push('>');
    s.push_str("</soapenv:Body></soapenv:Envelope>");
    s
}

/// What a response body held.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The `<MethodResponse>` element.
    Response(Element),
    /// A SOAP fault.
    Fault(SoapFault),
}

/// Finds the body of a parsed response envelope and classifies it.
pub(crate) fn unwrap_body(root: Element) -> Result<Reply, String> {
    if root.name != "Envelope" {
        return Err(format!("expected a SOAP Envelope, got <{}>", root.name));
    }
    let body = root
        .children
        .into_iter()
        .find(|c| c.name == "Body")
        .ok_or("SOAP envelope without Body")?;
    let first = body.children.into_iter().next().ok_or("empty SOAP Body")?;
    if first.name == "Fault" {
        Ok(Reply::Fault(SoapFault::from_element(&first)))
    } else {
        Ok(Reply::Response(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::esxi::xml::parse;

    #[test]
    fn envelope_wraps_and_escapes() {
        let mut w = method_body(&MoRef::new("ViewManager", "ViewManager"));
        w.moref("container", &MoRef::new("Folder", "ha-folder-root"))
            .leaf("type", "A&B");
        let env = envelope("CreateContainerView", &w.finish());
        let root = parse(&env).expect("well-formed");
        let Reply::Response(call) = unwrap_body(root).expect("body") else {
            panic!("not a response")
        };
        assert_eq!(call.name, "CreateContainerView");
        assert_eq!(call.child_text("type"), Some("A&B"));
        assert_eq!(
            call.child("_this").and_then(Element::as_moref),
            Some(MoRef::new("ViewManager", "ViewManager"))
        );
    }

    #[test]
    fn not_an_envelope() {
        let root = parse("<html><body>503</body></html>").expect("xml");
        assert!(unwrap_body(root).is_err());
    }
}
