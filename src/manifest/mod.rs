//! Manifests: the YAML an operator writes, loaded with source positions and validated.

mod load;
mod positions;
mod schema;
mod size;
mod types;
mod validate;

pub use load::{
    Documents, FailedDocument, KINDS, Resource, manifest_files, read_documents, read_file,
};
pub use positions::FieldPositions;
pub use schema::manifest_schema;
pub use size::{Size, SizeError};
pub use types::{
    API_VERSION, DiskSpec, Document, EnvSecret, FileSecret, HostSpec, Metadata, NetworkSpec, Power,
    SecretRef, VirtualMachineSpec,
};
pub use validate::{Inventory, load_inventory, load_valid_inventory};
