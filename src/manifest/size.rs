//! Sizes written with binary units in manifests: `512MiB`, `4GiB`, `1TiB`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MIB: u64 = 1 << 20;
const UNITS: [(&str, u64); 3] = [("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", MIB)];

/// A size in bytes, always a whole number of MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Size(u64);

/// Why a size string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid size {input:?}: {reason}")]
pub struct SizeError {
    pub input: String,
    pub reason: &'static str,
}

impl Size {
    /// A size of `mib` MiB.
    pub const fn from_mib(mib: u64) -> Self {
        Self(mib * MIB)
    }

    /// The size in bytes.
    pub const fn bytes(self) -> u64 {
        self.0
    }

    /// The size in whole MiB.
    pub const fn mib(self) -> u64 {
        self.0 / MIB
    }

    /// Formats a byte count with the largest unit that divides it, e.g. `4GiB`; falls back to bytes.
    pub fn format_bytes(bytes: u64) -> String {
        for (unit, factor) in UNITS {
            if bytes != 0 && bytes.is_multiple_of(factor) {
                return format!("{}{unit}", bytes / factor);
            }
        }
        format!("{bytes}B")
    }
}

impl FromStr for Size {
    type Err = SizeError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let err = |reason| SizeError {
            input: input.to_owned(),
            reason,
        };
        let trimmed = input.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| err("a unit is required: MiB, GiB or TiB (e.g. 4GiB)"))?;
        let (number, unit) = trimmed.split_at(split);
        if number.is_empty() {
            return Err(err(
                "expected a whole number followed by MiB, GiB or TiB (e.g. 20GiB)",
            ));
        }
        let factor = UNITS
            .iter()
            .find(|(name, _)| *name == unit.trim())
            .map(|(_, factor)| *factor)
            .ok_or_else(|| {
                err("unknown unit: use MiB, GiB or TiB (binary units; GB and G are not accepted)")
            })?;
        let number: u64 = number.parse().map_err(|_| err("number too large"))?;
        let bytes = number
            .checked_mul(factor)
            .ok_or_else(|| err("number too large"))?;
        if bytes == 0 {
            return Err(err("a size must be greater than zero"));
        }
        Ok(Size(bytes))
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&Size::format_bytes(self.0))
    }
}

impl Serialize for Size {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size such as 512MiB, 4GiB or 1TiB")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Size, E> {
                v.parse().map_err(E::custom)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Size, E> {
                Err(E::custom(format!(
                    "invalid size {v}: a unit is required: MiB, GiB or TiB (e.g. {v}MiB)"
                )))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Size, E> {
                Err(E::custom(format!(
                    "invalid size {v}: a unit is required: MiB, GiB or TiB"
                )))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl JsonSchema for Size {
    fn schema_name() -> Cow<'static, str> {
        "Size".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            // What `from_str` accepts (spaces around the number and unit included), zero aside.
            "pattern": "^\\s*[0-9]*[1-9][0-9]*\\s*(MiB|GiB|TiB)\\s*$",
            "description": "A size with a binary unit: MiB, GiB or TiB, e.g. 4GiB.",
            "examples": ["512MiB", "4GiB", "1TiB"]
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_binary_units() {
        assert_eq!("512MiB".parse::<Size>().unwrap().bytes(), 512 << 20);
        assert_eq!("4GiB".parse::<Size>().unwrap().mib(), 4096);
        assert_eq!("1TiB".parse::<Size>().unwrap().bytes(), 1 << 40);
    }

    #[test]
    fn refuses_ambiguous_or_bad_sizes() {
        for bad in [
            "4GB",
            "4G",
            "4",
            "GiB",
            "0GiB",
            "-1GiB",
            "1.5GiB",
            "99999999999999TiB",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad} should be refused");
        }
    }

    proptest! {
        #[test]
        fn display_round_trips(mib in 1u64..(1 << 30)) {
            let size = Size::from_mib(mib);
            prop_assert_eq!(size.to_string().parse::<Size>().unwrap(), size);
        }
    }
}
