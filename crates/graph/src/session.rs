//! The executor: owns a backend, the parameters and optimizer state, and one compiled plan per
//! (batch size, mode, outputs). A step writes the batch, rewrites the hyper buffer and submits;
//! the caller collects outputs later, so step k+1 can be queued before step k's loss is read.

use std::collections::HashMap;

use kiln_device::{Backend, BufferId, DType, DeviceKind, HostData, HostVec, Launch, PlanId, Stats, Ticket};

use crate::compile::{compile_with, Mode};
use crate::error::{Error, Result};
use crate::flat::FlatLayout;
use crate::graph::{Graph, NodeId, Op};
use crate::optimizer::Optimizer;
use crate::plan::{Buf, FlatPart, Plan};

/// A graph bound to a backend.
pub struct Session {
    graph: Graph,
    backend: Box<dyn Backend>,
    /// Session-owned buffers (parameters, state, constants, hyper), by node: views of the flat
    /// buffers for the parameters and optimizer state they hold.
    persistent: HashMap<NodeId, BufferId>,
    /// Flat parameter memory, when the graph's updates use it: the layout and each chunk's
    /// buffers.
    flat: Option<(FlatLayout, Vec<FlatBuffers>)>,
    names: HashMap<String, NodeId>,
    plans: Vec<Bound>,
    /// The live optimizer settings (a schedule changes the learning rate) and the hyper buffer
    /// they are written to before every training step.
    optimizer: Option<(Optimizer, NodeId)>,
    step: u64,
}

/// One chunk of flat parameter memory on the device.
struct FlatBuffers {
    param: BufferId,
    grad: BufferId,
    states: Vec<BufferId>,
    /// Each member's view of `grad`.
    grads: Vec<BufferId>,
}

/// A plan bound to device buffers.
struct Bound {
    mode: Mode,
    fetch: Vec<NodeId>,
    plan: Plan,
    id: PlanId,
    inputs: Vec<(NodeId, BufferId)>,
    reads: Vec<BufferId>,
    owned: Vec<BufferId>,
}

/// A submitted step; [`Session::wait`] turns it into the requested outputs.
#[must_use = "a pending step holds its read-back until waited on"]
pub struct Pending {
    ticket: Ticket,
    /// Elements of each output read back (its slot may be larger).
    lens: Vec<usize>,
}

/// One fed input: the input node and its data for the whole batch.
pub type Feed<'a> = (NodeId, HostData<'a>);

impl Session {
    /// Allocates and initializes every persistent tensor of `graph` (parameters from their
    /// initial values or zeros, optimizer state zeros). The optimizer updates run over flat
    /// parameter memory, one launch per chunk, where [`FlatLayout::of`] gives a layout.
    pub fn new(graph: Graph, backend: Box<dyn Backend>) -> Result<Self> {
        Self::build(graph, backend, true)
    }

    /// [`Session::new`] with one optimizer launch per parameter (no flat memory): each gradient
    /// is freed as soon as its parameter is updated. The same values bit for bit.
    pub fn new_per_parameter(graph: Graph, backend: Box<dyn Backend>) -> Result<Self> {
        Self::build(graph, backend, false)
    }

    fn build(graph: Graph, mut backend: Box<dyn Backend>, flat: bool) -> Result<Self> {
        graph.check()?;
        let mut persistent = HashMap::new();
        let mut names = HashMap::new();
        let hyper = graph.nodes().iter().position(|n| n.op == Op::Hyper).map(|i| NodeId(i as u32));
        let optimizer = graph.optimizer().zip(hyper);
        // flat parameter memory: zeroed buffers (the padding stays zero), the members' views
        let layout = FlatLayout::of(&graph, backend.max_buffer_bytes()).filter(|_| flat);
        let mut flat = Vec::new();
        for chunk in layout.iter().flat_map(|l| &l.chunks) {
            let zeros = vec![0.0f32; chunk.len];
            let parts = (0..2 + chunk.members[0].states.len())
                .map(|_| backend.upload(HostData::F32(&zeros)))
                .collect::<kiln_device::Result<Vec<_>>>()?;
            let mut grads = Vec::new();
            for m in &chunk.members {
                persistent.insert(m.param, backend.view(parts[0], m.offset, m.len)?);
                grads.push(backend.view(parts[1], m.offset, m.len)?);
                for (k, &state) in m.states.iter().enumerate() {
                    persistent.insert(state, backend.view(parts[2 + k], m.offset, m.len)?);
                }
            }
            flat.push(FlatBuffers { param: parts[0], grad: parts[1], states: parts[2..].to_vec(), grads });
        }
        for (i, node) in graph.nodes().iter().enumerate() {
            let id = NodeId(i as u32);
            if let Op::Input { name } | Op::Param { name } | Op::State { name } = &node.op {
                names.insert(name.clone(), id);
            }
            if !node.op.is_persistent() {
                continue;
            }
            let len = node.shape.numel(1);
            let zeros;
            let data = match &node.init {
                Some(d) => d,
                None => {
                    zeros = vec![0.0; len];
                    &zeros
                }
            };
            match persistent.get(&id) {
                Some(&view) => backend.write(view, HostData::F32(data))?,
                None => {
                    persistent.insert(id, backend.upload(HostData::F32(data))?);
                }
            }
        }
        let flat = layout.map(|l| (l, flat));
        Ok(Session { graph, backend, persistent, flat, names, plans: Vec::new(), optimizer, step: 0 })
    }

    /// The graph the session runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The backend the session's buffers live on.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The flat parameter memory the optimizer updates run over (`None`: one update per
    /// parameter; see [`FlatLayout::of`]).
    pub fn flat_layout(&self) -> Option<&FlatLayout> {
        self.flat.as_ref().map(|f| &f.0)
    }

    /// The backend's buffer and pipeline counters.
    pub fn stats(&self) -> Stats {
        self.backend.stats()
    }

    /// One training step: forward, backward and every optimizer update, fetching `fetch` (the
    /// loss, metrics...) at the end of the step. Returns as soon as the work is queued.
    pub fn train(&mut self, feeds: &[Feed<'_>], fetch: &[NodeId]) -> Result<Pending> {
        self.submit(feeds, fetch, Mode::Train)
    }

    /// A micro-step of gradient accumulation ([`Graph::accumulate_gradients`]): forward,
    /// backward and running statistics, the weighted gradients added into the accumulators, no
    /// optimizer update (the step count stays). The next [`Session::train`] updates from the sum.
    /// Errors when the graph accumulates no gradients.
    pub fn accumulate(&mut self, feeds: &[Feed<'_>], fetch: &[NodeId]) -> Result<Pending> {
        if self.graph.grad_weight().is_none() {
            return Err(Error::shape("accumulate", "the graph accumulates no gradients"));
        }
        self.submit(feeds, fetch, Mode::Accumulate)
    }

    /// Sets the weight of the gradients of the next steps (accumulate or train) in a graph that
    /// accumulates them (initially `1 / micro_batches`): for a mean-reduced loss, the
    /// micro-batch's rows over the rows of its whole accumulation window. One small write, no
    /// read-back.
    pub fn set_grad_weight(&mut self, weight: f32) -> Result<()> {
        let node = self
            .graph
            .grad_weight()
            .ok_or_else(|| Error::shape("accumulate", "the graph accumulates no gradients"))?;
        Ok(self.backend.write(self.persistent[&node], HostData::F32(&[weight]))?)
    }

    /// Evaluation or prediction: computes only what `fetch` needs, no updates, same parameters.
    pub fn run(&mut self, feeds: &[Feed<'_>], fetch: &[NodeId]) -> Result<Pending> {
        self.submit(feeds, fetch, Mode::Run)
    }

    /// Blocks until a step is done and returns its fetched outputs, in the order asked.
    pub fn wait(&mut self, pending: Pending) -> Result<Vec<HostVec>> {
        let mut out = self.backend.wait(pending.ticket)?;
        // A fetched tensor may sit in a larger shared slot: keep its own elements.
        for (v, &len) in out.iter_mut().zip(&pending.lens) {
            v.truncate(len);
        }
        Ok(out)
    }

    /// `train` then `wait`, with f32 outputs.
    pub fn train_sync(&mut self, feeds: &[Feed<'_>], fetch: &[NodeId]) -> Result<Vec<Vec<f32>>> {
        let p = self.train(feeds, fetch)?;
        self.wait_f32(p)
    }

    /// `run` then `wait`, with f32 outputs.
    pub fn run_sync(&mut self, feeds: &[Feed<'_>], fetch: &[NodeId]) -> Result<Vec<Vec<f32>>> {
        let p = self.run(feeds, fetch)?;
        self.wait_f32(p)
    }

    /// `wait` with f32 outputs.
    fn wait_f32(&mut self, pending: Pending) -> Result<Vec<Vec<f32>>> {
        self.wait(pending)?.into_iter().map(|v| Ok(v.into_f32()?)).collect()
    }

    /// The plan used for this batch size, mode and outputs, compiled and bound on first use.
    pub fn plan(&mut self, batch: usize, train: bool, fetch: &[NodeId]) -> Result<&Plan> {
        self.plan_mode(batch, if train { Mode::Train } else { Mode::Run }, fetch)
    }

    /// [`Session::plan`] for any [`Mode`] (an accumulation micro-step among them).
    pub fn plan_mode(&mut self, batch: usize, mode: Mode, fetch: &[NodeId]) -> Result<&Plan> {
        let i = self.bound(batch, mode, fetch)?;
        Ok(&self.plans[i].plan)
    }

    /// [`Session::run`] in parts, so that outputs complete early are read (and used) while the
    /// rest of the step still runs: `parts[k]` lists the indices into `fetch` read back after
    /// part k, and `each(k, outputs)` receives them (f32, in that order) as soon as part k is
    /// done. Part k runs the launches from where part k-1 stopped up to the last one its outputs
    /// need ([`Plan::fetch_ready`]); the last part runs the rest. One submission per part, the
    /// same launches over the same buffers as one `run`, so the outputs are bit-identical to
    /// `run_sync`'s. On the GPU part k+1 is queued before part k is read back (the device never
    /// waits for the host); the CPU backend runs a part when it is submitted.
    pub fn run_in_parts(
        &mut self,
        feeds: &[Feed<'_>],
        fetch: &[NodeId],
        parts: &[Vec<usize>],
        mut each: impl FnMut(usize, Vec<Vec<f32>>),
    ) -> Result<()> {
        if let Some(&k) = parts.iter().flatten().find(|&&k| k >= fetch.len()) {
            return Err(Error::feed("run_in_parts", format!("output {k} of {} fetched", fetch.len())));
        }
        let i = self.bound(self.batch_of(feeds)?, Mode::Run, fetch)?;
        self.write_inputs(i, feeds)?;
        let (id, plan) = (self.plans[i].id, &self.plans[i].plan);
        let ready = plan.fetch_ready();
        let mut at = 0;
        let mut launches = Vec::with_capacity(parts.len());
        for (k, part) in parts.iter().enumerate() {
            let end = if k + 1 == parts.len() {
                plan.launches()
            } else {
                part.iter().map(|&j| ready[j]).max().unwrap_or(0).max(at)
            };
            launches.push((at..end, part.iter().map(|&j| self.plans[i].reads[j]).collect::<Vec<_>>()));
            at = end;
        }
        let lens: Vec<Vec<usize>> =
            parts.iter().map(|p| p.iter().map(|&j| plan.fetch_lens[j]).collect()).collect();
        let queue_ahead = self.backend.info().kind != DeviceKind::Cpu;
        let mut queued: Option<(usize, Pending)> = None;
        for (k, ((range, reads), lens)) in launches.into_iter().zip(lens).enumerate() {
            let part = Pending { ticket: self.backend.submit_part(id, range, &reads)?, lens };
            if let Some((j, p)) = queued.take() {
                each(j, self.wait_f32(p)?);
            }
            if queue_ahead {
                queued = Some((k, part));
            } else {
                each(k, self.wait_f32(part)?);
            }
        }
        if let Some((j, p)) = queued {
            each(j, self.wait_f32(p)?);
        }
        Ok(())
    }

    /// Writes the fed inputs of bound plan `i`; an error names an input it needs and was not fed.
    fn write_inputs(&mut self, i: usize, feeds: &[Feed<'_>]) -> Result<()> {
        for &(node, buffer) in &self.plans[i].inputs {
            let Some((_, data)) = feeds.iter().find(|f| f.0 == node) else {
                let name = self.graph.name_of(node).unwrap_or_default();
                return Err(Error::name("input", &name, "is needed by this step but was not fed"));
            };
            self.backend.write(buffer, *data)?;
        }
        Ok(())
    }

    fn submit(&mut self, feeds: &[Feed<'_>], fetch: &[NodeId], mode: Mode) -> Result<Pending> {
        let batch = self.batch_of(feeds)?;
        let i = self.bound(batch, mode, fetch)?;
        self.write_inputs(i, feeds)?;
        if mode == Mode::Train {
            if let Some((opt, hyper)) = self.optimizer {
                self.step += 1;
                let h = opt.hyper(opt.lr(), self.step);
                self.backend.write(self.persistent[&hyper], HostData::F32(&h))?;
            }
        }
        let bound = &self.plans[i];
        let ticket = self.backend.submit(bound.id, &bound.reads)?;
        Ok(Pending { ticket, lens: bound.plan.fetch_lens.clone() })
    }

    /// The batch size the feeds imply: every input is `[B, ...]`.
    fn batch_of(&self, feeds: &[Feed<'_>]) -> Result<usize> {
        let mut batch = None;
        for (node, data) in feeds {
            let n = self.graph.node(*node);
            let Op::Input { name } = &n.op else {
                return Err(Error::feed(format!("node {}", node.index()), "only inputs can be fed"));
            };
            let (per, pow) = n.shape.symbolic_numel();
            if data.dtype() != n.dtype || pow != 1 || data.len() % per != 0 || data.is_empty() {
                return Err(Error::feed(
                    format!("input '{name}'"),
                    format!(
                        "shape {} ({:?}) cannot hold {} x {:?}",
                        n.shape,
                        n.dtype,
                        data.len(),
                        data.dtype()
                    ),
                ));
            }
            let b = data.len() / per;
            if batch.is_some_and(|x| x != b) {
                return Err(Error::feed(
                    format!("input '{name}'"),
                    format!("batch size {b} differs from the other inputs' {}", batch.unwrap_or(0)),
                ));
            }
            batch = Some(b);
        }
        Ok(batch.unwrap_or(1))
    }

    fn bound(&mut self, batch: usize, mode: Mode, fetch: &[NodeId]) -> Result<usize> {
        if let Some(i) =
            self.plans.iter().position(|b| b.plan.batch == batch && b.mode == mode && b.fetch == fetch)
        {
            return Ok(i);
        }
        let plan = compile_with(&self.graph, fetch, mode, batch, self.flat.as_ref().map(|f| &f.0))?;
        let mut owned = Vec::new();
        let mut temps = Vec::new();
        for &(dtype, len) in &plan.temps {
            temps.push(self.backend.alloc(dtype, len)?);
        }
        owned.extend(&temps);
        let mut fills = Vec::new();
        for &(len, value) in &plan.fills {
            fills.push(self.backend.upload(HostData::F32(&vec![value; len]))?);
        }
        owned.extend(&fills);
        let mut inputs = Vec::new();
        for &(node, dtype, len) in &plan.inputs {
            let b = self.backend.alloc(dtype, len)?;
            inputs.push((node, b));
            owned.push(b);
        }
        let resolve = |b: Buf| match b {
            Buf::Persistent(n) => self.persistent[&n],
            Buf::Input(n) => inputs.iter().find(|i| i.0 == n).expect("plan input").1,
            Buf::Fill(k) => fills[k],
            Buf::Temp(k) => temps[k],
            Buf::Flat { chunk, part } => {
                let f = &self.flat.as_ref().expect("a flat plan has flat buffers").1[chunk];
                match part {
                    FlatPart::Param => f.param,
                    FlatPart::Grad => f.grad,
                    FlatPart::State(k) => f.states[k],
                }
            }
            Buf::Grad { chunk, member } => {
                self.flat.as_ref().expect("a flat plan has flat buffers").1[chunk].grads[member]
            }
        };
        let launches: Vec<Launch> = plan
            .steps
            .iter()
            .map(|s| Launch { kernel: s.kernel, buffers: s.bufs.iter().map(|&b| resolve(b)).collect() })
            .collect();
        let reads: Vec<BufferId> = plan.fetch.iter().map(|&b| resolve(b)).collect();
        let id = self.backend.prepare(&launches)?;
        self.plans.push(Bound { mode, fetch: fetch.to_vec(), plan, id, inputs, reads, owned });
        Ok(self.plans.len() - 1)
    }

    /// Drops every compiled plan and its buffers (parameters and state are kept). Wait for every
    /// pending step first.
    pub fn clear_plans(&mut self) -> Result<()> {
        for b in self.plans.drain(..) {
            self.backend.drop_plan(b.id)?;
            for id in b.owned {
                self.backend.release(id)?;
            }
        }
        Ok(())
    }

    // ---- parameters, optimizer state, schedule: what checkpoints and exact resume need ----

    /// Parameter names in declaration order (PyTorch `state_dict` order when the trainer names
    /// them `0.weight`, `0.bias`, ...).
    pub fn param_names(&self) -> Vec<String> {
        self.graph.params().into_iter().filter_map(|p| self.graph.name_of(p)).collect()
    }

    /// Optimizer state names (`{param}.exp_avg`, ...), in declaration order.
    pub fn state_names(&self) -> Vec<String> {
        let nodes = self.graph.nodes();
        nodes
            .iter()
            .filter_map(|n| match &n.op {
                Op::State { name } => Some(name.clone()),
                _ => None,
            })
            .collect()
    }

    fn named(&self, what: &'static str, name: &str) -> Result<(BufferId, usize)> {
        let node = self.names.get(name).ok_or_else(|| Error::name(what, name, "not in the graph"))?;
        let n = self.graph.node(*node);
        let ok = match what {
            "parameter" => matches!(n.op, Op::Param { .. }),
            _ => matches!(n.op, Op::State { .. }),
        };
        if !ok {
            return Err(Error::name(what, name, format!("is a {}", n.op.name())));
        }
        Ok((self.persistent[node], n.shape.numel(1)))
    }

    /// Reads parameter `name` back to the host (row-major). Errors if no parameter has that name.
    pub fn get_param(&mut self, name: &str) -> Result<Vec<f32>> {
        let (b, _) = self.named("parameter", name)?;
        Ok(self.backend.read_f32(b)?)
    }

    /// Overwrites parameter `name`; `data` must hold exactly its element count.
    pub fn set_param(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.set("parameter", name, data)
    }

    /// Reads optimizer state `name` (`{param}.{slot}`, slots from [`Optimizer::state_names`]) back to the host.
    pub fn get_state(&mut self, name: &str) -> Result<Vec<f32>> {
        let (b, _) = self.named("optimizer state", name)?;
        Ok(self.backend.read_f32(b)?)
    }

    /// Overwrites optimizer state `name`; `data` must hold exactly its element count.
    pub fn set_state(&mut self, name: &str, data: &[f32]) -> Result<()> {
        self.set("optimizer state", name, data)
    }

    /// Zeroes state `name`: a key/value cache ([`Graph::cache`]) between prompts, or optimizer state.
    pub fn zero_state(&mut self, name: &str) -> Result<()> {
        let (_, len) = self.named("optimizer state", name)?;
        self.set("optimizer state", name, &vec![0.0; len])
    }

    fn set(&mut self, what: &'static str, name: &str, data: &[f32]) -> Result<()> {
        let (b, len) = self.named(what, name)?;
        if data.len() != len {
            return Err(Error::feed(
                format!("{what} '{name}'"),
                format!("holds {len} values, got {}", data.len()),
            ));
        }
        Ok(self.backend.write(b, HostData::F32(data))?)
    }

    /// Optimizer steps taken (Adam's `t`).
    pub fn step_count(&self) -> u64 {
        self.step
    }

    /// Sets the optimizer step count (Adam's `t`), e.g. when resuming from a checkpoint.
    pub fn set_step_count(&mut self, t: u64) {
        self.step = t;
    }

    /// The optimizer settings the next training step uses (none without `Graph::optimize`).
    pub fn optimizer(&self) -> Option<Optimizer> {
        self.optimizer.map(|(o, _)| o)
    }

    /// Changes the hyper-parameters from the next step on; no plan is rebuilt. The update rule
    /// is part of the graph, so `opt` must be the same kind of optimizer.
    pub fn set_optimizer(&mut self, opt: Optimizer) -> Result<()> {
        match &mut self.optimizer {
            Some((o, _)) if o.rule() == opt.rule() => {
                *o = opt;
                Ok(())
            }
            Some((o, _)) => Err(Error::name(
                "optimizer",
                opt.name(),
                format!("the graph's update nodes run {}", o.name()),
            )),
            None => Err(Error::name("optimizer", opt.name(), "the graph has no optimizer")),
        }
    }

    /// The learning rate the next step uses (0 without an optimizer).
    pub fn lr(&self) -> f32 {
        self.optimizer.map_or(0.0, |(o, _)| o.lr())
    }

    /// Changes the learning rate from the next step on (schedules); no plan is rebuilt.
    pub fn set_lr(&mut self, lr: f32) {
        if let Some((o, _)) = &mut self.optimizer {
            *o = o.with_lr(lr);
        }
    }

    /// The element type of a node (for reading fetched outputs).
    pub fn dtype(&self, id: NodeId) -> DType {
        self.graph.dtype(id)
    }
}
