//! The report: its assembly from the aggregate stores and the profilers
//! (the one place that reads them all), its table form, and the
//! `ResourceAttribution` API that reads usage back. The report's data types
//! live in the model.

mod assemble;
mod html;
mod resource;
mod running;
mod table;
mod window;

pub(crate) use assemble::report_with_heap;
pub use assemble::{report, reset, running_invocations};
pub use html::{HeapSite, HtmlReport};
pub use resource::ResourceAttribution;
pub(crate) use window::WindowMeter;
