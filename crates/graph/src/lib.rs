//! kiln-graph: the tensor graph of Kiln.
//!
//! Build a [`Graph`] of primitive ops (shape errors are found here), derive gradients with
//! [`Graph::gradients`], append optimizer updates with [`Graph::optimize`], and run it with a
//! [`Session`], which compiles one [`Plan`] per batch size (fused, buffers planned by liveness)
//! and submits it every step ([`Session::run_in_parts`] submits one in consecutive parts, each
//! read back as soon as it is done: what data-parallel training overlaps its gradient reduction
//! with). Parameters, gradients and optimizer state live in flat memory ([`FlatLayout`]: each a
//! view of one buffer), so one launch updates every parameter. Segments marked with [`Graph::checkpoint`] are recomputed during
//! the backward instead of keeping their activations alive (activation checkpointing).
//!
//! The graph has no kernel vocabulary of its own: a primitive node holds a [`Prim`] (defined,
//! validated and lowered to a sized kernel in kiln-device), autodiff's `vjp` is the one table of
//! backward rules over those primitives, and an optimizer's update nodes carry only their
//! [`UpdateRule`] and whether weight decay applies ([`Graph::optimize_with`]). The [`Optimizer`] given to [`Graph::optimize`] (its typed hyper-parameters) is
//! the session's: [`Session::set_lr`] and [`Session::set_optimizer`] change it between steps.
//!
//! Tensors are f32, u32, or the half types f16 and bf16 made by [`Graph::cast`]; matmul nodes take
//! half operands (f32 product), which is what mixed precision builds on (README, "Half precision"):
//! with [`Graph::set_autocast`], [`Graph::linear`] and the attention builders read half copies
//! of their operands, autocast-style.
//!
//! ```
//! use kiln_device::{open, BackendChoice, HostData};
//! use kiln_graph::{Graph, Optimizer, Session};
//!
//! # fn main() -> kiln_graph::Result<()> {
//! // A 2-layer MLP, 4 -> 8 -> 3, PyTorch names and layouts (weight is [out, in]).
//! let g = Graph::new();
//! let x = g.input("x", &[4]); // [B, 4]: the batch size is symbolic
//! let y = g.input_u32("y", &[]); // [B] class labels
//! let w1 = g.param_init("0.weight", &[8, 4], vec![0.1; 32]);
//! let b1 = g.param("0.bias", &[8]);
//! let w2 = g.param_init("2.weight", &[3, 8], vec![-0.1; 24]);
//! let b2 = g.param("2.bias", &[3]);
//! let h = g.relu(g.add(g.matmul_t(x, w1, false, true), b1)); // fused into one bias_act launch
//! let logits = g.linear(h, w2, Some(b2));
//! let loss = g.softmax_cross_entropy(logits, y);
//! g.check()?; // the first shape error, naming the op and both shapes
//! let params = [w1, b1, w2, b2];
//! let grads = g.gradients(loss, &params)?;
//! g.optimize(&params, &grads, Optimizer::adam(1e-3))?;
//!
//! let mut s = Session::new(g, open(BackendChoice::Cpu)?)?;
//! let (xs, ys) = (vec![0.5f32; 2 * 4], vec![1u32, 2]);
//! let feeds = [(x, HostData::F32(&xs)), (y, HostData::U32(&ys))];
//! let step = s.train(&feeds, &[loss])?; // queued; step k+1 may be submitted before waiting
//! let loss_value = s.wait(step)?.remove(0).into_f32()?[0];
//! assert!(loss_value > 0.0);
//! let probs = s.run_sync(&[(x, HostData::F32(&xs))], &[logits])?; // forward-only plan
//! assert_eq!(probs[0].len(), 2 * 3);
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod accumulate;
mod attention;
mod autocast;
mod autodiff;
mod compile;
mod error;
mod flat;
mod graph;
mod kv_cache;
mod layout;
mod loss_scale;
mod nn;
mod ops;
mod optim;
mod optimizer;
mod plan;
mod recompute;
pub mod reference;
mod rotary;
mod running;
mod session;
pub mod shape;
mod slots;

pub use accumulate::GRAD_WEIGHT;
pub use autodiff::saved;
pub use compile::{compile, compile_mode, compile_with, Mode};
pub use error::{Error, Result};
pub use flat::{Chunk, FlatLayout, Member, FLAT_MAX_ELEMENTS};
pub use graph::{Graph, Node, NodeId, Op};
pub use loss_scale::{GradScaler, Scaler, ScalerState, LOSS_SCALE, LOSS_SCALE_TRACKER};
pub use nn::{Attention, Conv2dOpts, TransformerBlock};
pub use optimizer::Optimizer;
pub use plan::{Buf, FlatPart, Plan, Step};
pub use rotary::rope_tables;
pub use session::{Feed, Pending, Session};
pub use shape::{Dim, Shape, B};

pub use kiln_device::{BinaryOp, DType, HostData, HostVec, Patches, Prim, ReduceOp, UnaryOp, UpdateRule};
