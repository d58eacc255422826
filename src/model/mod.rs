//! The release model: the document users write, its validation, and the status the
//! controller writes.

pub mod analysis;
mod audit;
mod document;
pub mod duration;
pub mod ecs;
mod field_error;
pub mod names;
pub mod notifications;
pub mod parse;
pub mod placement;
mod promotion;
mod status;
pub mod task_sets;
pub mod validate;

pub use analysis::{AnalysisPhase, AnalysisSpec, AnalysisStatus, MeasurementResult};
pub use audit::*;
pub use document::*;
pub use ecs::{EcsStatus, EcsStrategy};
pub use notifications::{
    EventKind, NotificationDestination, NotificationMessage, NotificationsStatus,
};
pub use parse::{
    DocumentError, document_to_json, document_to_yaml, parse_document_value, parse_documents,
    parse_documents_indexed, parse_spec_value,
};
pub use placement::{Home, Place, Placement};
pub use status::*;
pub use task_sets::{CanaryStep, PauseStep, TaskSetsStage, TaskSetsStatus, TaskSetsStrategy};
