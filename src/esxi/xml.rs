//! A small generic XML tree for SOAP responses, and a writer for requests.
//!
//! Responses are parsed with quick-xml's namespace-aware reader into [`Element`]s that keep only
//! what the vim25 protocol needs: the local element name, the `xsi:type` attribute (resolved by
//! namespace URI, whatever prefix the server chose), the other attributes, the children and the
//! text. Typed extraction works on this tree.
//!
//! A large response need not become one large tree: [`parse_detaching`] hands the elements at a
//! given path (e.g. each `returnval/objects` of a property collector result) to a [`Detach`]
//! as soon as each is complete, so only one of them is in memory at a time.

use std::fmt::Write as _;

use quick_xml::escape::{escape, resolve_predefined_entity};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{Namespace, QName, ResolveResult};
use quick_xml::reader::NsReader;

/// Namespace of the `xsi:type` attribute.
pub(crate) const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";
/// Namespace of the XML Schema built-in types (`xsd:string`, `xsd:int`, ...).
pub(crate) const XSD_NS: &str = "http://www.w3.org/2001/XMLSchema";

/// A resolved `xsi:type` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct XsiType {
    /// Local part of the type name, e.g. `VirtualDisk` or `string`.
    pub name: String,
    /// Whether the type is an XML Schema built-in (`xsd:string`) rather than a vim25 type.
    pub xsd: bool,
}

/// One element of a parsed document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Element {
    /// Local name (prefix stripped).
    pub name: String,
    /// The `xsi:type` attribute, resolved by namespace URI.
    pub xsi_type: Option<XsiType>,
    /// Other attributes (local name, value); namespace declarations and `xsi:*` are left out.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order.
    pub children: Vec<Element>,
    /// Concatenated character data directly inside this element.
    pub text: String,
}

/// The managed object reference the server sent (`<x type="T">value</x>`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct MoRef {
    /// Managed object type, e.g. `VirtualMachine`.
    pub kind: String,
    /// Reference value, e.g. `vm-12` or `3`.
    pub value: String,
}

impl MoRef {
    /// Builds a reference from its parts.
    pub fn new(kind: &str, value: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            value: value.to_owned(),
        }
    }
}

impl std::fmt::Display for MoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind, self.value)
    }
}

impl Element {
    /// Creates an element with a name and no content.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            ..Self::default()
        }
    }

    /// Creates a leaf element holding text.
    pub fn leaf(name: &str, text: &str) -> Self {
        Self {
            name: name.to_owned(),
            text: text.to_owned(),
            ..Self::default()
        }
    }

    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The first child with this local name, mutably.
    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.children.iter_mut().find(|c| c.name == name)
    }

    /// All children with this local name.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// Follows a path of child names.
    pub fn path(&self, names: &[&str]) -> Option<&Element> {
        names.iter().try_fold(self, |el, name| el.child(name))
    }

    /// Text of the first child with this name.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }

    /// Parses the text of the first child with this name.
    pub fn child_parse<T: std::str::FromStr>(&self, name: &str) -> Option<T> {
        self.child_text(name).and_then(|t| t.trim().parse().ok())
    }

    /// Value of a (non-`xsi`) attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Local name of the `xsi:type`, if any.
    pub fn type_name(&self) -> Option<&str> {
        self.xsi_type.as_ref().map(|t| t.name.as_str())
    }

    /// This element read as a managed object reference (`type` attribute plus text).
    pub fn as_moref(&self) -> Option<MoRef> {
        let kind = self.attr("type")?;
        Some(MoRef {
            kind: kind.to_owned(),
            value: self.text.clone(),
        })
    }

    /// Replaces the text of the child `name`, or inserts a new child right after the child
    /// `after` (or at the end) when it does not exist, keeping the schema's element order.
    pub fn set_child_text(&mut self, name: &str, text: &str, after: Option<&str>) {
        if let Some(c) = self.child_mut(name) {
            c.text = text.to_owned();
            return;
        }
        let pos = after
            .and_then(|a| self.children.iter().position(|c| c.name == a))
            .map_or(self.children.len(), |p| p + 1);
        self.children.insert(pos, Element::leaf(name, text));
    }

    /// Writes this element (with its descendants) under another element name. Used to send a
    /// device read from the host back in a `VirtualDeviceConfigSpec`.
    pub fn write_as(&self, name: &str, w: &mut XmlWriter) {
        w.buf.push('<');
        w.buf.push_str(name);
        for (k, v) in &self.attrs {
            let _ = write!(w.buf, " {k}=\"{}\"", escape(v.as_str()));
        }
        if let Some(t) = &self.xsi_type {
            let prefix = if t.xsd { "xsd:" } else { "" };
            let _ = write!(w.buf, " xsi:type=\"{prefix}{}\"", escape(t.name.as_str()));
        }
        w.buf.push('>');
        if self.children.is_empty() {
            w.buf.push_str(&escape(self.text.as_str()));
        } else {
            for c in &self.children {
                c.write_as(&c.name, w);
            }
        }
        w.end(name);
    }
}

/// Receives elements taken out of a document while it is parsed (see [`parse_detaching`]).
pub(crate) trait Detach: Send {
    /// Local names from the root element down to the elements to hand over; `*` matches any
    /// name. For example `["Envelope", "Body", "*", "returnval", "objects"]`.
    fn path(&self) -> &[&str];

    /// Receives one complete element found at [`path`](Self::path), in document order. An
    /// error stops the parse.
    fn element(&mut self, el: Element) -> Result<(), String>;
}

/// Parses a complete document and returns its root element.
#[cfg(test)]
pub(crate) fn parse(xml: &str) -> Result<Element, String> {
    parse_detaching(xml, None)
}

/// Parses a complete document like [`parse`], except that every element at `detach.path()` is
/// handed to `detach` as soon as its end tag is read instead of being added to its parent: the
/// returned tree lacks those elements, and only one of them is held at a time.
pub(crate) fn parse_detaching(
    xml: &str,
    detach: Option<&mut dyn Detach>,
) -> Result<Element, String> {
    parse_with(xml, detach, false)
}

/// Parses a document whose attributes live in namespaces (an OVF descriptor): every attribute
/// is kept by its local name (`ovf:href` becomes `href`, `vmw:key` becomes `key`), where
/// [`parse`] keeps only unqualified ones.
pub(crate) fn parse_keeping_qualified_attributes(xml: &str) -> Result<Element, String> {
    parse_with(xml, None, true)
}

fn parse_with(
    xml: &str,
    mut detach: Option<&mut dyn Detach>,
    keep_qualified: bool,
) -> Result<Element, String> {
    let mut reader = NsReader::from_str(xml);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("malformed XML: {e}"))?;
        let closed = match event {
            Event::Start(start) => {
                let el = start_element(&reader, &start, keep_qualified)?;
                stack.push(el);
                None
            }
            Event::Empty(start) => Some(start_element(&reader, &start, keep_qualified)?),
            Event::End(_) => Some(stack.pop().ok_or("unbalanced end tag")?),
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
                None
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content());
                }
                None
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    Ok(None) => resolve_predefined_entity(&r)
                        .ok_or_else(|| format!("unknown entity &{};", &*r))?
                        .to_owned(),
                    Err(e) => return Err(format!("bad character reference: {e}")),
                };
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&resolved);
                }
                None
            }
            Event::Eof => break,
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => None,
        };
        let Some(el) = closed else { continue };
        match detach.as_deref_mut() {
            Some(d) if at_path(d.path(), &stack, &el) => d.element(el)?,
            _ => close(el, &mut stack, &mut root),
        }
    }
    if !stack.is_empty() {
        return Err("malformed XML: the document ended inside an element".to_owned());
    }
    root.ok_or_else(|| "empty document".to_owned())
}

/// Whether `el`, whose open ancestors are `stack` (root first), sits at `path`.
fn at_path(path: &[&str], stack: &[Element], el: &Element) -> bool {
    let Some((last, ancestors)) = path.split_last() else {
        return false;
    };
    let matches = |pattern: &str, name: &str| pattern == "*" || pattern == name;
    ancestors.len() == stack.len()
        && matches(last, &el.name)
        && ancestors
            .iter()
            .zip(stack)
            .all(|(pattern, a)| matches(pattern, &a.name))
}

/// Adds a complete element to its parent (or makes it the root).
fn close(el: Element, stack: &mut [Element], root: &mut Option<Element>) {
    match stack.last_mut() {
        Some(parent) => parent.children.push(el),
        None => {
            if root.is_none() {
                *root = Some(el);
            }
        }
    }
}

fn start_element(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
    keep_qualified: bool,
) -> Result<Element, String> {
    let resolver = reader.resolver();
    let name = start.local_name().as_ref().to_owned();
    let mut el = Element::new(&name);
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute in <{name}>: {e}"))?;
        if attr.key.as_namespace_binding().is_some() {
            continue;
        }
        let value = attr
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|e| format!("bad attribute value in <{name}>: {e}"))?
            .into_owned();
        let (ns, local) = resolver.resolve_attribute(attr.key);
        let local = local.as_ref().to_owned();
        match ns {
            ResolveResult::Bound(Namespace(ns)) if ns == XSI_NS && local == "type" => {
                // The value is a QName: resolve its prefix too (unprefixed = default namespace).
                let qname = QName(value.as_str());
                let (type_ns, type_local) = resolver.resolve_element(qname);
                let xsd = matches!(type_ns, ResolveResult::Bound(Namespace(n)) if n == XSD_NS);
                el.xsi_type = Some(XsiType {
                    name: type_local.as_ref().to_owned(),
                    xsd,
                });
            }
            ResolveResult::Unbound => el.attrs.push((local, value)),
            _ if keep_qualified => el.attrs.push((local, value)),
            // Other xsi attributes (e.g. xsi:nil) and foreign namespaces carry nothing needed.
            _ => {}
        }
    }
    Ok(el)
}

/// Builds request XML with escaping. Element names are trusted constants; all text and
/// attribute values are escaped.
#[derive(Debug, Default)]
pub(crate) struct XmlWriter {
    pub buf: String,
}

impl XmlWriter {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// `<name>`
    pub fn start(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.buf, "<{name}>");
        self
    }

    /// `<name xsi:type="ty">`
    pub fn start_typed(&mut self, name: &str, ty: &str) -> &mut Self {
        let _ = write!(self.buf, "<{name} xsi:type=\"{}\">", escape(ty));
        self
    }

    /// `</name>`
    pub fn end(&mut self, name: &str) -> &mut Self {
        let _ = write!(self.buf, "</{name}>");
        self
    }

    /// `<name>text</name>`
    pub fn leaf(&mut self, name: &str, text: &str) -> &mut Self {
        let _ = write!(self.buf, "<{name}>{}</{name}>", escape(text));
        self
    }

    /// `<name xsi:type="ty">text</name>`
    pub fn leaf_typed(&mut self, name: &str, ty: &str, text: &str) -> &mut Self {
        let _ = write!(
            self.buf,
            "<{name} xsi:type=\"{}\">{}</{name}>",
            escape(ty),
            escape(text)
        );
        self
    }

    /// `<name type="Kind">value</name>`
    pub fn moref(&mut self, name: &str, moref: &MoRef) -> &mut Self {
        let _ = write!(
            self.buf,
            "<{name} type=\"{}\">{}</{name}>",
            escape(moref.kind.as_str()),
            escape(moref.value.as_str())
        );
        self
    }

    /// The XML written so far.
    pub fn finish(self) -> String {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_xsi_type_by_namespace_not_prefix() {
        let doc = r#"<r xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
            <val xmlns:XMLSchema-instance="http://www.w3.org/2001/XMLSchema-instance" XMLSchema-instance:type="xsd:string">a &amp; b &#65;</val>
            <f xsi:type="InvalidPowerState"/>
            <g xmlns:bogus="urn:other" bogus:type="Nope" type="VirtualMachine">vm-1</g>
        </r>"#;
        let root = parse(doc).expect("parses");
        let val = root.child("val").expect("val");
        assert_eq!(
            val.xsi_type,
            Some(XsiType {
                name: "string".into(),
                xsd: true
            })
        );
        assert_eq!(val.text, "a & b A");
        let f = root.child("f").expect("f");
        assert_eq!(
            f.xsi_type,
            Some(XsiType {
                name: "InvalidPowerState".into(),
                xsd: false
            })
        );
        let g = root.child("g").expect("g");
        assert_eq!(g.xsi_type, None);
        assert_eq!(g.as_moref(), Some(MoRef::new("VirtualMachine", "vm-1")));
    }

    #[test]
    fn writer_escapes_text_and_attributes() {
        let mut w = XmlWriter::new();
        w.moref(
            "obj",
            &MoRef::new("Datastore", "/tmp/a b@ha-folder-datastore"),
        )
        .moref("v", &MoRef::new("ContainerView", "session[x]<y>&\"z\""))
        .leaf("name", "web & <db>");
        assert_eq!(
            w.finish(),
            "<obj type=\"Datastore\">/tmp/a b@ha-folder-datastore</obj>\
             <v type=\"ContainerView\">session[x]&lt;y&gt;&amp;&quot;z&quot;</v>\
             <name>web &amp; &lt;db&gt;</name>"
        );
    }

    #[test]
    fn rewrites_a_parsed_tree() {
        let doc = r#"<VirtualDevice xmlns:p="http://www.w3.org/2001/XMLSchema-instance" p:type="VirtualDisk"><key>1</key><backing p:type="VirtualDiskFlatVer2BackingInfo"><fileName>[ds] a&amp;b.vmdk</fileName><datastore type="Datastore">ds-1</datastore></backing></VirtualDevice>"#;
        let el = parse(doc).expect("parses");
        let mut w = XmlWriter::new();
        el.write_as("device", &mut w);
        assert_eq!(
            w.finish(),
            "<device xsi:type=\"VirtualDisk\"><key>1</key><backing xsi:type=\"VirtualDiskFlatVer2BackingInfo\">\
             <fileName>[ds] a&amp;b.vmdk</fileName><datastore type=\"Datastore\">ds-1</datastore></backing></device>"
        );
    }

    #[test]
    fn detaches_elements_at_a_path() {
        struct Take {
            path: Vec<&'static str>,
            got: Vec<Element>,
        }
        impl Detach for Take {
            fn path(&self) -> &[&str] {
                &self.path
            }
            fn element(&mut self, el: Element) -> Result<(), String> {
                self.got.push(el);
                Ok(())
            }
        }
        let doc =
            r#"<r><a><o>1</o><o x="y"/><p><o>deeper</o></p></a><b><o><i>2</i></o></b><o>3</o></r>"#;
        let mut take = Take {
            path: vec!["r", "*", "o"],
            got: Vec::new(),
        };
        let root = parse_detaching(doc, Some(&mut take)).expect("parses");
        // Handed over in document order, exactly as `parse` would have built them ...
        let full = parse(doc).expect("parses");
        let expected: Vec<Element> = full
            .children
            .iter()
            .filter(|c| c.name != "o")
            .flat_map(|c| c.children_named("o").cloned())
            .collect();
        assert_eq!(take.got, expected);
        assert_eq!(take.got.len(), 3);
        // ... and left out of the tree; elements elsewhere stay.
        assert_eq!(
            root.path(&["a", "p", "o"]).map(|o| o.text.as_str()),
            Some("deeper")
        );
        assert_eq!(root.child("a").map(|a| a.children.len()), Some(1));
        assert_eq!(root.child("b").map(|b| b.children.len()), Some(0));
        assert_eq!(root.child_text("o"), Some("3"));

        struct Refuse;
        impl Detach for Refuse {
            fn path(&self) -> &[&str] {
                &["r", "o"]
            }
            fn element(&mut self, _: Element) -> Result<(), String> {
                Err("no".into())
            }
        }
        assert_eq!(parse_detaching(doc, Some(&mut Refuse)), Err("no".into()));
    }

    #[test]
    fn rejects_garbage() {
        assert!(parse("<a><b></a>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<a>&bogus;</a>").is_err());
    }
}
