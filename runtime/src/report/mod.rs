//! The report: its assembly from the aggregate stores and the profilers
//! (the one place that reads them all), its table form, and the
//! `ResourceAttribution` API that reads usage back. The report's data types
//! live in the model.

mod assemble;
mod attribution;
mod html;
mod invocation_detail;
mod invocation_page;
mod running_rows;
mod text;
mod window;

pub(crate) use assemble::report_with_heap;
pub use assemble::{report, reset, running_invocations};
pub use attribution::ResourceAttribution;
pub(crate) use html::message_svg;
pub use html::{HeapSite, HtmlReport};
pub(crate) use invocation_detail::invocation_figures;
pub use invocation_detail::{invocation_detail, InvocationDetail};
pub(crate) use window::WindowMeter;
