//! The JSON Schema of the manifests, generated from the Rust types, and the first validation
//! pass over every document: checked against its kind's schema, a document yields all its
//! problems at once (serde, used afterwards, stops at the first).

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{JsonType, ValidationError, Validator};
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::size::Size;
use super::types::{
    API_VERSION, BackupPolicySpec, BackupTargetSpec, DatastoreTargetSpec, DirectoryTargetSpec,
    DiskSpec, Document, EnvSecret, FileSecret, HostSpec, IpPoolSpec, Metadata, NetworkSpec, Power,
    RetentionSpec, ScheduleSpec, TemplateSpec, VirtualMachineSpec,
};

/// The schema of one manifest document of any kind (`oneOf`, told apart by `kind`).
pub fn manifest_schema() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let kinds = [
        ("Host", generator.subschema_for::<Document<HostSpec>>()),
        (
            "VirtualMachine",
            generator.subschema_for::<Document<VirtualMachineSpec>>(),
        ),
        (
            "Template",
            generator.subschema_for::<Document<TemplateSpec>>(),
        ),
        ("IpPool", generator.subschema_for::<Document<IpPoolSpec>>()),
        (
            "BackupPolicy",
            generator.subschema_for::<Document<BackupPolicySpec>>(),
        ),
    ];
    let mut definitions: Map<String, Value> =
        generator.take_definitions(true).into_iter().collect();
    let mut one_of = Vec::new();
    for (kind, reference) in kinds {
        let reference = reference.to_value();
        let name = reference["$ref"]
            .as_str()
            .and_then(|r| r.rsplit('/').next())
            .unwrap_or_default()
            .to_owned();
        if let Some(properties) = definitions
            .get_mut(&name)
            .and_then(|d| d.get_mut("properties"))
        {
            properties["kind"] = json!({ "const": kind, "description": "The kind of resource." });
            properties["apiVersion"] =
                json!({ "const": API_VERSION, "description": "Always ceso/v1." });
        }
        if kind == "VirtualMachine"
            && let Some(spec) = definitions.get_mut("VirtualMachineSpec")
        {
            // Without a template or source, cpu and memory must be declared.
            spec["if"] = json!({
                "not": { "anyOf": [{ "required": ["template"] }, { "required": ["source"] }] }
            });
            spec["then"] = json!({ "required": ["cpu", "memory"] });
        }
        let renamed = document_definition(kind);
        if let Some(definition) = definitions.remove(&name) {
            definitions.insert(renamed.clone(), definition);
        }
        one_of.push(json!({ "$ref": format!("#/$defs/{renamed}") }));
    }
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://ceso.dev/schemas/ceso-v1.schema.json",
        "title": "ceso manifest (apiVersion ceso/v1)",
        "description": "One YAML document of a ceso inventory: a Host, VirtualMachine, Template, IpPool or BackupPolicy.",
        "oneOf": one_of,
        "$defs": definitions,
    })
}

/// Name of the `$defs` entry of a kind's document, e.g. `HostDocument`.
fn document_definition(kind: &str) -> String {
    format!("{kind}Document")
}

/// One problem found by the schema pass, not yet placed in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SchemaProblem {
    /// Field path, e.g. `spec.disks[0].type`.
    pub field: String,
    /// Whether the problem is best shown at the field's key (an unknown or missing field) rather
    /// than at its value.
    pub at_key: bool,
    pub message: String,
    pub hint: Option<String>,
}

/// The manifest schema and one compiled validator per kind, built once.
struct Schemas {
    definitions: Map<String, Value>,
    validators: Vec<(&'static str, Validator)>,
}

fn schemas() -> &'static Schemas {
    static SCHEMAS: OnceLock<Schemas> = OnceLock::new();
    SCHEMAS.get_or_init(|| {
        let schema = manifest_schema();
        let validators = super::KINDS
            .iter()
            .map(|kind| {
                let mut per_kind = schema.clone();
                let object = per_kind.as_object_mut().expect("the schema is an object");
                object.remove("oneOf");
                object.remove("$schema");
                object.insert(
                    "$ref".to_owned(),
                    json!(format!("#/$defs/{}", document_definition(kind))),
                );
                // Compiled as draft 7, where every keyword the schema uses means the same as in
                // 2020-12 (a test checks): checking the schema against the 2020-12 meta-schema,
                // which the crate does first, would cost ~25 MiB and ~40 ms at every start.
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft7)
                    .build(&per_kind)
                    .unwrap_or_else(|e| panic!("the {kind} schema compiles: {e}"));
                (*kind, validator)
            })
            .collect();
        let definitions = match schema {
            Value::Object(mut object) => match object.remove("$defs") {
                Some(Value::Object(definitions)) => definitions,
                _ => Map::new(),
            },
            _ => Map::new(),
        };
        Schemas {
            definitions,
            validators,
        }
    })
}

/// Checks one document (as JSON) against the schema of `kind`; every problem found, or `None`
/// when this release has no schema for the kind.
pub(crate) fn schema_problems(kind: &str, document: &Value) -> Option<Vec<SchemaProblem>> {
    let schemas = schemas();
    let validator = schemas
        .validators
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, v)| v)?;
    let root = schemas
        .definitions
        .get_key_value(&document_definition(kind))
        .map(|(name, schema)| (name.as_str(), schema))?;
    let mut problems: Vec<SchemaProblem> = Vec::new();
    for error in validator.iter_errors(document) {
        let node = Node::find(&schemas.definitions, root, document, &error);
        for problem in describe(&error, &node) {
            if !problems.contains(&problem) {
                problems.push(problem);
            }
        }
    }
    Some(problems)
}

/// Where an error is: the field path, and what the schema says about the field there.
struct Node<'s, 'i> {
    path: String,
    /// The field's schema, `$ref`s followed.
    schema: Option<&'s Value>,
    /// The `$defs` entry the field's schema is (`Size`, `Power`, `HostSpec`, ...).
    definition: Option<&'s str>,
    description: Option<&'s str>,
    value: Option<&'i Value>,
    /// The path and value of the enclosing secret reference (`spec.password`), whose content is
    /// never echoed.
    secret: Option<(String, &'i Value)>,
}

impl<'s, 'i> Node<'s, 'i> {
    fn find(
        definitions: &'s Map<String, Value>,
        (root_name, root): (&'s str, &'s Value),
        document: &'i Value,
        error: &ValidationError<'_>,
    ) -> Self {
        let mut node = Node {
            path: String::new(),
            schema: Some(root),
            definition: Some(root_name),
            description: None,
            value: Some(document),
            secret: None,
        };
        for token in pointer_tokens(error.instance_path.as_str()) {
            let value = node.value.take();
            let child_schema = match value {
                Some(Value::Array(items)) => {
                    let index = token.parse::<usize>().ok();
                    node.path.push_str(&format!("[{token}]"));
                    node.value = index.and_then(|i| items.get(i));
                    node.schema.and_then(|s| s.get("items"))
                }
                other => {
                    if !node.path.is_empty() {
                        node.path.push('.');
                    }
                    node.path.push_str(&token);
                    node.value = other.and_then(|v| v.get(&token));
                    node.schema.and_then(|s| {
                        s.get("properties")
                            .and_then(|p| p.get(&token))
                            .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
                    })
                }
            };
            node.description = child_schema.and_then(description);
            match child_schema.map(|s| resolve(definitions, s)) {
                Some((schema, definition)) => {
                    node.schema = Some(schema);
                    node.definition = definition;
                    node.description = node.description.or_else(|| description(schema));
                }
                None => {
                    node.schema = None;
                    node.definition = None;
                }
            }
            if node.secret.is_none()
                && node.definition == Some("SecretRef")
                && let Some(value) = node.value
            {
                node.secret = Some((node.path.clone(), value));
            }
        }
        node
    }

    fn child(&self, name: &str) -> String {
        if self.path.is_empty() {
            name.to_owned()
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// The schema of a property of this (object) field.
    fn property(&self, name: &str) -> Option<&'s Value> {
        self.schema?.get("properties")?.get(name)
    }
}

/// Follows `$ref`s to `#/$defs/...`; returns the schema and the name of the last definition.
fn resolve<'s>(
    definitions: &'s Map<String, Value>,
    mut schema: &'s Value,
) -> (&'s Value, Option<&'s str>) {
    let mut definition = None;
    for _ in 0..8 {
        let Some(name) = schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix("#/$defs/"))
        else {
            break;
        };
        let Some((name, target)) = definitions.get_key_value(name) else {
            break;
        };
        schema = target;
        definition = Some(name.as_str());
    }
    (schema, definition)
}

fn description(schema: &Value) -> Option<&str> {
    schema.get("description").and_then(Value::as_str)
}

/// What to write for a yes/no field.
const BOOLEAN_HINT: &str =
    "write `true` or `false`, without quotes (`yes`, `no` and quoted values are strings)";

/// A description as a one-line hint (doc comments wrap their lines).
fn one_line(description: &str) -> String {
    description.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The unescaped tokens of a JSON pointer (`/spec/disks/0`).
fn pointer_tokens(pointer: &str) -> Vec<String> {
    pointer
        .split('/')
        .skip(1)
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect()
}

const SECRET_HINT: &str = "write `password: { secret: NAME }` (ceso's encrypted store: `ceso secret set NAME`), `{ keyring: NAME }` (the OS keyring), `{ env: VARIABLE }` or `{ file: path }`; literal passwords are not accepted";
const POWER_HINT: &str = "write `power: on` or `power: off`";
const SIZE_HINT: &str =
    "write a whole number with a binary unit: MiB, GiB or TiB, e.g. 512MiB or 4GiB";

/// Turns one schema error into what an operator reads.
fn describe(error: &ValidationError<'_>, node: &Node<'_, '_>) -> Vec<SchemaProblem> {
    if let Some((path, value)) = &node.secret {
        // Whatever is wrong inside a secret reference, its content is never echoed.
        return vec![SchemaProblem {
            field: path.clone(),
            at_key: false,
            message: secret_message(value),
            hint: Some(SECRET_HINT.to_owned()),
        }];
    }
    let value = error.instance.as_ref();
    match &error.kind {
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected
            .iter()
            .map(|name| unknown_field(node, name))
            .collect(),
        ValidationErrorKind::Required { property } => {
            let name = property.as_str().unwrap_or_default();
            let hint = match node.property(name).and_then(description) {
                Some(what) => format!("add `{name}`: {}", one_line(what)),
                None => format!("add `{name}`; see docs/manifests.md for every field"),
            };
            vec![SchemaProblem {
                field: node.child(name),
                at_key: true,
                message: format!("missing field `{name}`"),
                hint: Some(hint),
            }]
        }
        _ if node.definition == Some("Size") => vec![value_problem(
            node,
            serde_message::<Size>(value),
            Some(SIZE_HINT.to_owned()),
        )],
        _ if node.definition == Some("Power") => vec![value_problem(
            node,
            serde_message::<Power>(value),
            Some(POWER_HINT.to_owned()),
        )],
        ValidationErrorKind::Type { kind } => {
            let what = node.description.map(one_line);
            let hint = match kind {
                // `yes`, `on` and quoted `"true"` are strings in YAML 1.2.
                TypeKind::Single(JsonType::Boolean) => Some(match what {
                    Some(what) => format!("{BOOLEAN_HINT}. {what}"),
                    None => BOOLEAN_HINT.to_owned(),
                }),
                _ => what,
            };
            vec![value_problem(
                node,
                Some(format!(
                    "invalid type: {}, expected {}",
                    unexpected(value),
                    expected(kind)
                )),
                hint,
            )]
        }
        _ => vec![value_problem(
            node,
            Some(error.to_string()),
            node.description.map(one_line),
        )],
    }
}

fn value_problem(
    node: &Node<'_, '_>,
    message: Option<String>,
    hint: Option<String>,
) -> SchemaProblem {
    SchemaProblem {
        field: node.path.clone(),
        at_key: false,
        message: message.unwrap_or_else(|| "invalid value".to_owned()),
        hint,
    }
}

/// What is wrong with a secret reference, without a word of its content.
fn secret_message(value: &Value) -> String {
    const FORMS: [&str; 4] = ["secret", "keyring", "env", "file"];
    match value {
        Value::Object(fields) => {
            let given: Vec<&str> = FORMS
                .iter()
                .copied()
                .filter(|k| fields.contains_key(*k))
                .collect();
            if given.len() > 1 {
                format!(
                    "give one of `secret`, `keyring`, `env` or `file`, not {}",
                    given.join(" and ")
                )
            } else if fields.is_empty() || fields.keys().any(|k| !FORMS.contains(&k.as_str())) {
                "a secret reference is `{ secret: NAME }`, `{ keyring: NAME }`, `{ env: VARIABLE }` or `{ file: path }`".to_owned()
            } else {
                "the name of the secret, keyring entry, environment variable or file must be a string"
                    .to_owned()
            }
        }
        _ => "literal passwords are not accepted".to_owned(),
    }
}

/// The message serde gives for `value` as a `T`, if it refuses it.
fn serde_message<T: DeserializeOwned>(value: &Value) -> Option<String> {
    serde_json::from_value::<T>(value.clone()).err().map(|e| {
        e.to_string()
            .replace("type: null,", &format!("type: {EMPTY},"))
            .replace("unit value", EMPTY)
    })
}

/// How an empty YAML value (`power:`) is named.
const EMPTY: &str = "an empty value (null)";

/// "unknown field `x`, expected one of ...", worded (and ordered) exactly as serde words it for
/// the type the schema definition stands for, plus a hint.
fn unknown_field(node: &Node<'_, '_>, name: &str) -> SchemaProblem {
    let probe = json!({ name: null });
    let serde = match node.definition {
        Some("HostDocument") => serde_message::<Document<HostSpec>>(&probe),
        Some("VirtualMachineDocument") => serde_message::<Document<VirtualMachineSpec>>(&probe),
        Some("BackupPolicyDocument") => serde_message::<Document<BackupPolicySpec>>(&probe),
        Some("Metadata") => serde_message::<Metadata>(&probe),
        Some("HostSpec") => serde_message::<HostSpec>(&probe),
        Some("VirtualMachineSpec") => serde_message::<VirtualMachineSpec>(&probe),
        Some("DiskSpec") => serde_message::<DiskSpec>(&probe),
        Some("NetworkSpec") => serde_message::<NetworkSpec>(&probe),
        Some("EnvSecret") => serde_message::<EnvSecret>(&probe),
        Some("FileSecret") => serde_message::<FileSecret>(&probe),
        Some("BackupPolicySpec") => serde_message::<BackupPolicySpec>(&probe),
        Some("ScheduleSpec") => serde_message::<ScheduleSpec>(&probe),
        Some("RetentionSpec") => serde_message::<RetentionSpec>(&probe),
        Some("BackupTargetSpec") => serde_message::<BackupTargetSpec>(&probe),
        Some("DirectoryTargetSpec") => serde_message::<DirectoryTargetSpec>(&probe),
        Some("DatastoreTargetSpec") => serde_message::<DatastoreTargetSpec>(&probe),
        _ => None,
    }
    .filter(|m| m.starts_with("unknown field"));
    let allowed: Vec<String> = node
        .schema
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let listed = serde
        .as_deref()
        .and_then(|m| m.split_once(", expected "))
        .map(|(_, list)| list.trim_start_matches("one of ").to_owned())
        .unwrap_or_else(|| {
            allowed
                .iter()
                .map(|f| format!("`{f}`"))
                .collect::<Vec<_>>()
                .join(", ")
        });
    let mut hint = if listed.is_empty() {
        "remove this field".to_owned()
    } else {
        format!("fields allowed here: {listed}")
    };
    if let Some(close) = closest(name, &allowed) {
        hint = format!("did you mean `{close}`? {hint}");
    }
    SchemaProblem {
        field: node.child(name),
        at_key: true,
        message: serde.unwrap_or_else(|| format!("unknown field `{name}`")),
        hint: Some(hint),
    }
}

/// The allowed name closest to a misspelt one, when it is close enough to be a typo.
pub(super) fn closest<'a>(name: &str, allowed: &'a [String]) -> Option<&'a str> {
    let lower = name.to_lowercase();
    allowed
        .iter()
        .map(|candidate| {
            (
                strsim::levenshtein(&lower, &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(distance, candidate)| *distance <= 2.min(candidate.len() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate.as_str())
}

/// A value as serde names it in "invalid type" messages.
fn unexpected(value: &Value) -> String {
    match value {
        Value::Null => EMPTY.to_owned(),
        Value::Bool(b) => format!("boolean `{b}`"),
        Value::Number(n) if n.is_f64() => format!("floating point `{n}`"),
        Value::Number(n) => format!("integer `{n}`"),
        Value::String(s) => format!("string {s:?}"),
        Value::Array(_) => "a list".to_owned(),
        Value::Object(_) => "a mapping".to_owned(),
    }
}

fn expected(kind: &TypeKind) -> String {
    let name = |t: JsonType| match t {
        JsonType::Array => Some("a list"),
        JsonType::Boolean => Some("`true` or `false`"),
        JsonType::Integer => Some("a whole number"),
        JsonType::Null => None,
        JsonType::Number => Some("a number"),
        JsonType::Object => Some("a mapping"),
        JsonType::String => Some("a string"),
    };
    match kind {
        TypeKind::Single(t) => name(*t).unwrap_or("null").to_owned(),
        TypeKind::Multiple(set) => set.iter().filter_map(name).collect::<Vec<_>>().join(" or "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(kind: &str, document: Value) -> Vec<(String, bool, String)> {
        schema_problems(kind, &document)
            .expect("a known kind")
            .into_iter()
            .map(|p| (p.field, p.at_key, p.message))
            .collect()
    }

    #[test]
    fn a_valid_document_has_no_problem() {
        let vm = json!({
            "apiVersion": "ceso/v1", "kind": "VirtualMachine", "metadata": { "name": "a" },
            "spec": { "host": "h", "cpu": 1, "memory": "4GiB", "power": true, "disks": [{ "size": " 20 GiB " }] }
        });
        assert_eq!(problems("VirtualMachine", vm), vec![]);
        assert!(schema_problems("Cluster", &json!({})).is_none());
    }

    #[test]
    fn problems_are_found_at_every_level() {
        let host = json!({
            "apiVersion": "ceso/v1", "kind": "Host", "metadata": { "name": "a", "labels": { "tier": 1 } },
            "status": {},
            "spec": { "address": "https://h", "username": "root", "password": { "env": "X" },
                      "datastore": "d", "network": "n", "insecure": null }
        });
        let mut found = problems("Host", host);
        found.sort();
        assert_eq!(
            found,
            vec![
                (
                    "metadata.labels.tier".into(),
                    false,
                    "invalid type: integer `1`, expected a string".into()
                ),
                (
                    "spec.insecure".into(),
                    false,
                    "invalid type: an empty value (null), expected `true` or `false`".into()
                ),
                (
                    "status".into(),
                    true,
                    "unknown field `status`, expected one of `apiVersion`, `kind`, `metadata`, `spec`".into()
                ),
            ]
        );
        let power = json!({
            "apiVersion": "ceso/v1", "kind": "VirtualMachine", "metadata": { "name": "a" },
            "spec": { "host": "h", "cpu": 1, "memory": "1GiB", "power": null }
        });
        assert_eq!(
            problems("VirtualMachine", power),
            vec![(
                "spec.power".into(),
                false,
                "invalid type: an empty value (null), expected `on` or `off`".into()
            )]
        );
    }

    #[test]
    fn every_problem_of_a_document_is_found() {
        let vm = json!({
            "apiVersion": "ceso/v1", "kind": "VirtualMachine", "metadata": { "name": "a" },
            "spec": { "cpu": 1, "memory": "4GB", "powr": "on", "disks": [{ "size": 20, "type": "thin" }] }
        });
        let mut found = problems("VirtualMachine", vm);
        found.sort();
        assert_eq!(
            found,
            vec![
                (
                    "spec.disks[0].size".into(),
                    false,
                    "invalid size 20: a unit is required: MiB, GiB or TiB (e.g. 20MiB)".into()
                ),
                (
                    "spec.disks[0].type".into(),
                    true,
                    "unknown field `type`, expected `size`".into()
                ),
                ("spec.host".into(), true, "missing field `host`".into()),
                (
                    "spec.memory".into(),
                    false,
                    "invalid size \"4GB\": unknown unit: use MiB, GiB or TiB (binary units; GB and G are not accepted)".into()
                ),
                (
                    "spec.powr".into(),
                    true,
                    "unknown field `powr`, expected one of `host`, `template`, `source`, `cpu`, `memory`, `disks`, `networks`, `power`, `guestId`, `datastore`, `protect`, `suspend`, `cloudInit`, `annotation`, `shutdown`, `backupPolicy`".into()
                ),
            ]
        );
    }

    #[test]
    fn secrets_are_never_echoed() {
        for password in [
            json!("hunter2"),
            json!({ "env": "X", "file": "hunter2" }),
            json!({ "hunter2": "x" }),
            json!({ "env": ["hunter2"] }),
        ] {
            let host = json!({
                "apiVersion": "ceso/v1", "kind": "Host", "metadata": { "name": "a" },
                "spec": { "address": "https://h", "username": "root", "password": password,
                          "datastore": "d", "network": "n" }
            });
            let found = schema_problems("Host", &host).unwrap();
            assert_eq!(found.len(), 1, "{found:?}");
            assert_eq!(found[0].field, "spec.password");
            assert!(!format!("{found:?}").contains("hunter2"), "{found:?}");
        }
    }

    /// The keywords the kind validators (compiled as draft 7) read exactly as draft 2020-12 does.
    const SHARED_KEYWORDS: [&str; 23] = [
        "$defs",
        "if",
        "then",
        "$id",
        "$ref",
        "$schema",
        "additionalProperties",
        "anyOf",
        "const",
        "default",
        "description",
        "enum",
        "examples",
        "format",
        "items",
        "maximum",
        "minimum",
        "oneOf",
        "pattern",
        "properties",
        "required",
        "title",
        "type",
    ];

    fn keywords(schema: &Value, out: &mut std::collections::BTreeSet<String>) {
        let Some(object) = schema.as_object() else {
            return;
        };
        for (keyword, value) in object {
            out.insert(keyword.clone());
            match keyword.as_str() {
                "properties" | "$defs" => value
                    .as_object()
                    .into_iter()
                    .flat_map(|m| m.values())
                    .for_each(|s| keywords(s, out)),
                "anyOf" | "oneOf" | "allOf" => value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .for_each(|s| keywords(s, out)),
                "items" | "additionalProperties" => keywords(value, out),
                _ => {}
            }
        }
    }

    #[test]
    fn the_schema_means_the_same_in_draft_7() {
        let mut used = std::collections::BTreeSet::new();
        keywords(&manifest_schema(), &mut used);
        let other: Vec<&String> = used
            .iter()
            .filter(|k| !SHARED_KEYWORDS.contains(&k.as_str()))
            .collect();
        assert!(
            other.is_empty(),
            "{other:?}: check that draft 7 reads these as 2020-12 does (see `schemas()`), then add them"
        );
    }

    #[test]
    fn typos_get_a_suggestion() {
        let allowed = ["power".to_owned(), "protect".to_owned(), "cpu".to_owned()];
        assert_eq!(closest("powr", &allowed), Some("power"));
        assert_eq!(closest("CPU", &allowed), Some("cpu"));
        assert_eq!(closest("colour", &allowed), None);
        assert_eq!(closest("gpu", &allowed), Some("cpu"));
    }
}
