//! Where every field of a YAML document sits in its file, so that errors found after parsing
//! (a bad size, an unknown host) can still name the line and column.

use std::collections::BTreeMap;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, ScanError};

/// Positions (1-based line, column) of the keys and values of one document, by field path such
/// as `spec.disks[0].size` (the same form `serde_path_to_error` prints).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPositions {
    /// Where the document starts.
    pub start: (usize, usize),
    keys: BTreeMap<String, (usize, usize)>,
    values: BTreeMap<String, (usize, usize)>,
}

impl FieldPositions {
    /// The position of a field's value (or key), falling back to the closest parent field and
    /// finally to the document start.
    pub fn value(&self, path: &str) -> (usize, usize) {
        self.lookup(path, true)
    }

    /// The position of a field's key (for unknown fields), with the same fallbacks.
    pub fn key(&self, path: &str) -> (usize, usize) {
        self.lookup(path, false)
    }

    fn lookup(&self, path: &str, prefer_value: bool) -> (usize, usize) {
        let mut current = path;
        let mut prefer_value = prefer_value;
        loop {
            let (first, second) = if prefer_value {
                (&self.values, &self.keys)
            } else {
                (&self.keys, &self.values)
            };
            if let Some(pos) = first.get(current).or_else(|| second.get(current)) {
                return *pos;
            }
            match current.rfind(['.', '[']) {
                Some(cut) => {
                    // Collection start marks are imprecise: a parent is best shown by its key.
                    current = &current[..cut];
                    prefer_value = false;
                }
                None => return self.start,
            }
        }
    }
}

enum Frame {
    Map { path: String, key: Option<String> },
    Seq { path: String, index: usize },
}

#[derive(Default)]
struct Indexer {
    documents: Vec<FieldPositions>,
    stack: Vec<Frame>,
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn position(mark: Marker) -> (usize, usize) {
    (mark.line(), mark.col() + 1)
}

impl Indexer {
    fn current(&mut self) -> &mut FieldPositions {
        if self.documents.is_empty() {
            self.documents.push(FieldPositions::default());
        }
        self.documents.last_mut().expect("a document exists")
    }

    /// Records a value (scalar, alias or the start of a collection) at `mark`; returns its path.
    fn value_path(&mut self, mark: Marker) -> Option<String> {
        let path = match self.stack.last_mut() {
            None => String::new(),
            Some(Frame::Map { path, key }) => match key.take() {
                Some(key) => child(path, &key),
                None => return None, // this value is a key; handled by the caller
            },
            Some(Frame::Seq { path, index }) => {
                let child = format!("{path}[{index}]");
                *index += 1;
                child
            }
        };
        self.current().values.insert(path.clone(), position(mark));
        Some(path)
    }
}

impl MarkedEventReceiver for Indexer {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::DocumentStart => {
                self.documents.push(FieldPositions {
                    start: position(mark),
                    ..Default::default()
                });
                self.stack.clear();
            }
            Event::Scalar(text, ..) => {
                if let Some(Frame::Map {
                    path,
                    key: key @ None,
                }) = self.stack.last_mut()
                {
                    let full = child(path, &text);
                    *key = Some(text);
                    self.current().keys.insert(full, position(mark));
                } else {
                    self.value_path(mark);
                }
            }
            Event::Alias(_) => {
                self.value_path(mark);
            }
            Event::MappingStart(..) => {
                let path = self.value_path(mark).unwrap_or_else(|| "?".to_owned());
                self.stack.push(Frame::Map { path, key: None });
            }
            Event::SequenceStart(..) => {
                let path = self.value_path(mark).unwrap_or_else(|| "?".to_owned());
                self.stack.push(Frame::Seq { path, index: 0 });
            }
            Event::MappingEnd | Event::SequenceEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

/// Indexes every document of a YAML stream. A syntax error comes back with its 1-based position.
pub fn index_documents(text: &str) -> Result<Vec<FieldPositions>, (ScanError, (usize, usize))> {
    let mut indexer = Indexer::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut indexer, true).map_err(|e| {
        let pos = position(*e.marker());
        (e, pos)
    })?;
    Ok(indexer.documents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_fields() {
        let text = "a: 1\n---\nkind: VM\nspec:\n  disks:\n    - size: 4GiB\n    - { size: 8GiB }\n";
        let docs = index_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].value("kind"), (3, 7));
        assert_eq!(docs[1].key("spec.disks"), (5, 3));
        assert_eq!(docs[1].value("spec.disks[0].size"), (6, 13));
        assert_eq!(docs[1].value("spec.disks[1].size"), (7, 15));
        assert_eq!(docs[1].value("spec.disks[1].nope"), (7, 7));
        assert_eq!(docs[1].value("spec.missing"), (4, 1));
    }
}
