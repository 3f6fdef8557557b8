//! The report: its assembly from the aggregate stores and the profilers
//! (the one place that reads them all), its table form, and the
//! `ResourceAttribution` API that reads usage back. The report's data types
//! live in the model, shared with the opt-out build.

#[cfg(feature = "enabled")]
mod assemble;
mod html;
#[cfg(feature = "enabled")]
mod resource;
#[cfg(feature = "enabled")]
mod running;
mod table;
#[cfg(feature = "enabled")]
mod window;

#[cfg(feature = "enabled")]
pub(crate) use assemble::report_with_heap;
#[cfg(feature = "enabled")]
pub use assemble::{report, reset, running_invocations};
pub use html::{HeapSite, HtmlReport};
#[cfg(feature = "enabled")]
pub use resource::ResourceAttribution;
#[cfg(feature = "enabled")]
pub(crate) use window::WindowMeter;
