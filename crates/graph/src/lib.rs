//! kiln-graph: the tensor graph of Kiln.
//!
//! Build a [`Graph`] of primitive ops (shape errors are found here), derive gradients with
//! [`Graph::gradients`], append optimizer updates with [`Graph::optimize`], and run it with a
//! [`Session`], which compiles one [`Plan`] per batch size (fused, buffers planned by liveness)
//! and submits it every step.

mod autodiff;
mod compile;
mod error;
mod graph;
mod ops;
mod optim;
mod plan;
pub mod reference;
mod session;
pub mod shape;

pub use autodiff::saved;
pub use compile::compile;
pub use error::{Error, Result};
pub use graph::{Graph, Node, NodeId, Op};
pub use optim::Optimizer;
pub use plan::{Buf, Plan, Step};
pub use session::{Feed, Pending, Session};
pub use shape::{Dim, Shape, B};

pub use kiln_device::{BinaryOp, DType, HostData, HostVec, ReduceOp, UnaryOp};
