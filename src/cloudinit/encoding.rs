//! The guestinfo encodings (`gzip+base64` and the others cloud-init reads) and reading the
//! cloud-init keys back from a VM's extraConfig.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde_json::Value;

use super::{METADATA_ENCODING_KEY, METADATA_KEY, USERDATA_ENCODING_KEY, USERDATA_KEY};

/// Why a guestinfo value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error(
        "unknown encoding {0:?} (cloud-init knows base64, b64, gzip+base64 and gz+b64, and would \
         read the value as plain text)"
    )]
    UnknownEncoding(String),
    #[error("not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("not gzip data: {0}")]
    Gzip(std::io::Error),
    #[error("the decoded value is not UTF-8 text")]
    NotUtf8,
    #[error("neither JSON ({json}) nor YAML ({yaml})")]
    Syntax { json: String, yaml: String },
    #[error("must be a mapping, not {0}")]
    NotMapping(&'static str),
    /// Any of the above, in the value of `key`.
    #[error("{key}: {error}")]
    InKey {
        key: String,
        error: Box<DecodeError>,
    },
}

impl DecodeError {
    fn in_key(self, key: &str) -> Self {
        DecodeError::InKey {
            key: key.to_owned(),
            error: Box::new(self),
        }
    }
}

/// `text` gzip-compressed, then base64-encoded (standard alphabet, padded): the `gzip+base64`
/// encoding. Deterministic (the gzip header carries no time).
pub fn encode(text: &str) -> String {
    let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
    gzip.write_all(text.as_bytes())
        .expect("compressing into memory cannot fail");
    let compressed = gzip.finish().expect("compressing into memory cannot fail");
    STANDARD.encode(compressed)
}

/// Decodes a guestinfo `value` written with `encoding` (the value of its `.encoding` key), as
/// cloud-init's VMware datasource does: none or `""` is plain text, `base64`/`b64` is base64,
/// `gzip+base64`/`gz+b64` is gzip inside base64. Whitespace inside base64 is ignored.
///
/// Stricter than cloud-init, which reads an unknown encoding as plain text and a
/// `gzip+base64` payload that is not gzip as the base64-decoded bytes: both are errors here.
pub fn decode(value: &str, encoding: Option<&str>) -> Result<String, DecodeError> {
    match encoding.map(str::trim_end).unwrap_or_default() {
        "" => Ok(value.to_owned()),
        "base64" | "b64" => String::from_utf8(base64(value)?).map_err(|_| DecodeError::NotUtf8),
        "gzip+base64" | "gz+b64" => {
            let mut text = Vec::new();
            GzDecoder::new(base64(value)?.as_slice())
                .read_to_end(&mut text)
                .map_err(DecodeError::Gzip)?;
            String::from_utf8(text).map_err(|_| DecodeError::NotUtf8)
        }
        other => Err(DecodeError::UnknownEncoding(other.to_owned())),
    }
}

fn base64(value: &str) -> Result<Vec<u8>, DecodeError> {
    let compact: String = value.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    Ok(STANDARD.decode(compact)?)
}

/// The cloud-init data a VM's extraConfig holds, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedGuestinfo {
    /// `guestinfo.metadata` (a mapping), with a `network` that was itself encoded (a string
    /// with `network.encoding`) decoded in place, as cloud-init does.
    pub metadata: Option<Value>,
    /// `guestinfo.userdata`.
    pub user_data: Option<String>,
}

/// Reads `guestinfo.metadata` and `guestinfo.userdata` (with their `.encoding` keys) from a
/// VM's extraConfig. Like cloud-init, a value that is empty, blank or `---` (what cloud-init
/// leaves after redacting a key) is absent, and metadata may be JSON or YAML.
pub fn read_guestinfo(
    extra_config: &BTreeMap<String, String>,
) -> Result<DecodedGuestinfo, DecodeError> {
    let metadata = read_key(extra_config, METADATA_KEY, METADATA_ENCODING_KEY)?
        .map(|text| parse_metadata(&text).map_err(|error| error.in_key(METADATA_KEY)))
        .transpose()?;
    let user_data = read_key(extra_config, USERDATA_KEY, USERDATA_ENCODING_KEY)?;
    Ok(DecodedGuestinfo {
        metadata,
        user_data,
    })
}

fn read_key(
    extra_config: &BTreeMap<String, String>,
    key: &str,
    encoding_key: &str,
) -> Result<Option<String>, DecodeError> {
    let present = |key: &str| {
        extra_config
            .get(key)
            .map(|value| value.trim_end())
            .filter(|value| !value.is_empty() && *value != "---")
    };
    let Some(value) = present(key) else {
        return Ok(None);
    };
    decode(value, present(encoding_key))
        .map(Some)
        .map_err(|error| error.in_key(key))
}

fn parse_metadata(text: &str) -> Result<Value, DecodeError> {
    let mut metadata = match parse_json_or_yaml(text)? {
        Value::Object(map) => map,
        Value::Null => serde_json::Map::new(),
        other => return Err(DecodeError::NotMapping(json_kind(&other))),
    };
    if let Some(Value::String(network)) = metadata.get("network") {
        let encoding = match metadata.get("network.encoding") {
            Some(Value::String(encoding)) => Some(encoding.as_str()),
            _ => None,
        };
        let network = decode(network, encoding)
            .and_then(|text| parse_json_or_yaml(&text))
            .map_err(|error| error.in_key("network"))?;
        metadata.insert("network".into(), network);
        metadata.remove("network.encoding");
    }
    Ok(Value::Object(metadata))
}

fn parse_json_or_yaml(text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text).or_else(|json_error| {
        serde_yaml::from_str(text).map_err(|yaml_error| DecodeError::Syntax {
            json: json_error.to_string(),
            yaml: yaml_error.to_string(),
        })
    })
}

/// The JSON kind of `value`, for messages.
pub(super) fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}
