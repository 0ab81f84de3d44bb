//! Graph -> [`Plan`]: dead-node elimination, fusion of bias-add + activation into `bias_act` and of
//! a bias or residual add into the matmul before it,
//! a schedule (ascending ids, each optimizer or running-statistic update right after the last
//! reader of its target; a cache write at its own id, in place in its cache's buffer), and buffer
//! planning by liveness (tensors of one type whose lifetimes do not overlap share an activation
//! slot, see `slots.rs`). With flat parameter memory ([`FlatLayout`], `flat.rs`) each gradient
//! is written into its view of the flat gradient buffer, and one update per chunk, after every
//! member's own update would have run, replaces the per-parameter updates.

use kiln_device::{Addend, BinaryOp, DType, Kernel, LossScale, Memory, Prim, RunningUpdate, Unary};

use crate::error::{Error, Result};
use crate::flat::FlatLayout;
use crate::graph::{Graph, Node, NodeId, Op};
use crate::plan::{Buf, FlatPart, Plan, Step};
use crate::slots::{self, Lifetime};

/// What a compiled step runs besides what its fetched outputs need.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Evaluation or prediction: only what the fetched outputs need.
    Run,
    /// A training step: every optimizer and running-statistic update; gradient accumulators
    /// ([`Graph::accumulate_gradients`]) are read (their sum is what the optimizer sees) and then
    /// zeroed.
    Train,
    /// A micro-step of gradient accumulation: running statistics and the accumulations (each
    /// accumulator adds its value), no optimizer update.
    Accumulate,
}

/// Compiles the part of `g` that `fetch` (and, when `train`, every optimizer and running-statistic
/// update) needs, at batch size `batch`.
pub fn compile(g: &Graph, fetch: &[NodeId], train: bool, batch: usize) -> Result<Plan> {
    compile_mode(g, fetch, if train { Mode::Train } else { Mode::Run }, batch)
}

/// [`compile`] for any [`Mode`] (an accumulation micro-step among them), with the flat parameter
/// memory a CPU session would use ([`FlatLayout::of`] with no buffer limit).
pub fn compile_mode(g: &Graph, fetch: &[NodeId], mode: Mode, batch: usize) -> Result<Plan> {
    compile_with(g, fetch, mode, batch, FlatLayout::of(g, u64::MAX).as_ref())
}

/// [`compile_mode`] with the session's flat parameter memory (`None`: one update per parameter).
pub fn compile_with(
    g: &Graph,
    fetch: &[NodeId],
    mode: Mode,
    batch: usize,
    flat: Option<&FlatLayout>,
) -> Result<Plan> {
    g.check()?;
    if batch == 0 {
        return Err(Error::shape("compile", "batch size must be at least 1"));
    }
    let nodes = g.nodes();
    let n = nodes.len();
    let mut roots: Vec<NodeId> = fetch.to_vec();
    let runs = |op: &Op| match mode {
        Mode::Run => false,
        Mode::Train => op.is_update(),
        Mode::Accumulate => matches!(op, Op::RunningUpdate { .. } | Op::Accumulate),
    };
    roots.extend((0..n).filter(|&i| runs(&nodes[i].op)).map(|i| NodeId(i as u32)));

    // Dead-node elimination: keep what the roots reach.
    let mut live = vec![false; n];
    roots.iter().for_each(|r| live[r.index()] = true);
    for i in (0..n).rev() {
        if live[i] {
            nodes[i].inputs.iter().for_each(|x| live[x.index()] = true);
        }
    }

    // Reshapes share their source's buffer, and a cache write is its cache after the write:
    // `root` is the node that owns the storage.
    let mut root: Vec<usize> = (0..n).collect();
    for i in 0..n {
        if let Some(k) = in_place_of(&nodes[i].op) {
            root[i] = root[nodes[i].inputs[k].index()];
        }
    }

    let mut uses = vec![0usize; n];
    for i in (0..n).filter(|&i| live[i]) {
        nodes[i].inputs.iter().for_each(|x| uses[x.index()] += 1);
    }
    fetch.iter().for_each(|f| uses[f.index()] += 1);

    // Fusion: unary(x + bias) -> bias_act(x, bias), when the sum feeds nothing else.
    let mut fused_into: Vec<Option<(NodeId, NodeId)>> = vec![None; n];
    let mut skip = vec![false; n];
    for i in (0..n).filter(|&i| live[i]) {
        let Op::Prim(Prim::Unary { .. }) = nodes[i].op else { continue };
        let a = nodes[i].inputs[0].index();
        if uses[a] != 1 || nodes[a].op != Op::Prim(Prim::Binary(BinaryOp::Add)) {
            continue;
        }
        if let Some(pair) = bias_pair(&nodes, &nodes[a]) {
            fused_into[i] = Some(pair);
            skip[a] = true;
        }
    }
    // Fusion: matmul + addend -> one matmul that adds a bias or a residual as it stores, when
    // the product (through at most one reshape) feeds nothing but the add.
    let mut addend_of: Vec<Option<(usize, NodeId, Addend)>> = vec![None; n];
    for i in 0..n {
        let add = nodes[i].op == Op::Prim(Prim::Binary(BinaryOp::Add)) && nodes[i].dtype == DType::F32;
        if !live[i] || skip[i] || !add {
            continue;
        }
        if let Some((mm, other, kind)) = matmul_addend(&nodes, i, &uses) {
            addend_of[i] = Some((mm, other, kind));
            skip[mm] = true;
        }
    }
    // What each step reads after fusion.
    let fused_reads = |i: usize| -> Vec<NodeId> {
        match (fused_into[i], addend_of[i]) {
            (Some((x, b)), _) => vec![x, b],
            (_, Some((mm, other, _))) => [&nodes[mm].inputs[..], &[other]].concat(),
            _ => nodes[i].inputs.clone(),
        }
    };

    // Schedule: ascending ids, except that an update waits for every reader of its parameter.
    let executes = |i: usize| live[i] && !skip[i] && !is_leaf(&nodes[i].op) && nodes[i].op != Op::Reshape;
    let mut last_reader = vec![0usize; n];
    for i in (0..n).filter(|&i| executes(i) && !nodes[i].op.is_update()) {
        for x in &fused_reads(i) {
            let r = root[x.index()];
            last_reader[r] = last_reader[r].max(i);
        }
    }
    let mut order: Vec<(usize, usize)> = (0..n)
        .filter(|&i| executes(i))
        .map(|i| match nodes[i].op {
            Op::Update { .. } => {
                let (param, grad, hyper) = (nodes[i].inputs[0], nodes[i].inputs[1], nodes[i].inputs[2]);
                // after the loss scaler's step too, when the hyper buffer comes from one (the
                // hyper leaf itself is made after the gradients and orders nothing)
                let scaler = match nodes[hyper.index()].op {
                    Op::ScaleUpdate { .. } => hyper.index(),
                    _ => 0,
                };
                (2 * grad.index().max(scaler).max(last_reader[root[param.index()]]) + 1, i)
            }
            // a half copy saved for the backward: right after the tensor it copies
            _ if g.is_early(NodeId(i as u32)) => (2 * nodes[i].inputs[0].index() + 1, i),
            Op::RunningUpdate { .. } | Op::Accumulate => {
                let (target, value) = (nodes[i].inputs[0], nodes[i].inputs[1]);
                (2 * value.index().max(last_reader[root[target.index()]]) + 1, i)
            }
            _ => (2 * i, i),
        })
        .collect();
    // flat memory: one update per chunk, where the last of its members' updates would run
    let mut chunk_of_update = vec![None; n];
    if let Some(layout) = flat {
        for (c, chunk) in layout.chunks.iter().enumerate() {
            chunk.members.iter().for_each(|m| chunk_of_update[m.update.index()] = Some(c));
        }
        let mut last: Vec<Option<(usize, usize)>> = vec![None; layout.chunks.len()];
        for &(key, i) in &order {
            if let Some(c) = chunk_of_update[i] {
                last[c] = last[c].max(Some((key, i)));
            }
        }
        order.retain(|&(key, i)| chunk_of_update[i].is_none_or(|c| last[c] == Some((key, i))));
    }
    order.sort_unstable();
    let order: Vec<usize> = order.into_iter().map(|(_, i)| i).collect();

    // What each step reads (after fusion), and where each storage root is read last.
    let reads = |i: usize| -> Vec<NodeId> {
        match nodes[i].op {
            // a training step zeroes the accumulator (a fill of its own buffer)
            Op::Accumulate if mode == Mode::Train => vec![nodes[i].inputs[0]],
            _ => fused_reads(i),
        }
    };
    let mut last_use = vec![None::<usize>; n];
    for (pos, &i) in order.iter().enumerate() {
        last_use[root[i]] = Some(last_use[root[i]].unwrap_or(pos).max(pos));
        for x in reads(i) {
            last_use[root[x.index()]] = Some(pos);
        }
    }
    for f in fetch {
        last_use[root[f.index()]] = Some(usize::MAX);
    }

    // Leaves' buffers.
    let mut plan = Plan {
        batch,
        steps: Vec::new(),
        temps: Vec::new(),
        fills: Vec::new(),
        inputs: Vec::new(),
        persistent: Vec::new(),
        fetch: Vec::new(),
        fetch_lens: Vec::new(),
        fused: fused_into.iter().filter(|f| f.is_some()).count(),
        fused_addends: addend_of.iter().filter(|f| f.is_some()).count(),
        grad_bytes: 0,
        naive_bytes: 0,
        live: Vec::new(),
    };
    let mut buf: Vec<Option<Buf>> = vec![None; n];
    for i in (0..n).filter(|&i| live[i] && is_leaf(&nodes[i].op)) {
        let len = nodes[i].shape.numel(batch);
        let id = NodeId(i as u32);
        buf[i] = Some(match &nodes[i].op {
            Op::Input { .. } => {
                plan.inputs.push((id, nodes[i].dtype, len));
                Buf::Input(id)
            }
            Op::Fill { value, per_batch } => {
                let v = if *per_batch { value / batch as f32 } else { *value };
                plan.fills.push((len, v));
                Buf::Fill(plan.fills.len() - 1)
            }
            _ => {
                plan.persistent.push((id, len));
                Buf::Persistent(id)
            }
        });
    }

    // Gradients in flat memory: each in its view.
    if let Some(layout) = flat {
        for (c, chunk) in layout.chunks.iter().enumerate() {
            for (k, m) in chunk.members.iter().enumerate() {
                if live[m.grad.index()] {
                    buf[m.grad.index()] = Some(Buf::Grad { chunk: c, member: k });
                }
            }
        }
    }

    // Activation slots by liveness (see `slots.rs`): the tensors each step writes, placed by
    // their lifetimes.
    let writes = |i: usize| !nodes[i].op.is_update() && in_place_of(&nodes[i].op).is_none();
    let (written, lifetimes): (Vec<usize>, Vec<Lifetime>) = order
        .iter()
        .enumerate()
        .filter(|&(_, &i)| writes(i) && buf[i].is_none())
        .map(|(pos, &i)| {
            let (dtype, len) = (nodes[i].dtype, nodes[i].shape.numel(batch));
            (i, Lifetime { dtype, len, first: pos, last: last_use[i].unwrap_or(pos) })
        })
        .unzip();
    let mut naive = plan.peak_bytes(); // bytes, by each tensor's type
    let (slot_of, temps) = slots::assign(&lifetimes);
    plan.temps = temps;
    for (i, slot) in written.into_iter().zip(slot_of) {
        buf[i] = Some(Buf::Temp(slot));
    }
    let mut alive = 0u64; // bytes of the activation tensors alive
    let bytes = |i: usize| nodes[i].dtype.bytes(nodes[i].shape.numel(batch));
    for (pos, &i) in order.iter().enumerate() {
        let id = NodeId(i as u32);
        let mut bufs = Vec::new();
        if writes(i) {
            naive += bytes(i);
            if let Some(Buf::Temp(_)) = buf[i] {
                alive += bytes(i);
            }
            bufs.push(buf[i].expect("every written tensor has a slot"));
        }
        let inputs = reads(i);
        let kernel = match (flat, chunk_of_update[i]) {
            (Some(layout), Some(chunk)) => {
                // the chunk's update: its parameters, gradients, the hyper buffer and its states
                let c = &layout.chunks[chunk];
                let Op::Update { rule, .. } = nodes[i].op else { unreachable!("an update") };
                let hyper =
                    buf[root[nodes[i].inputs[2].index()]].expect("the hyper buffer is a leaf or in place");
                let part = |part| Buf::Flat { chunk, part };
                bufs.extend([part(FlatPart::Param), part(FlatPart::Grad), hyper]);
                bufs.extend((0..c.members[0].states.len()).map(|k| part(FlatPart::State(k))));
                rule.lower_flat(c.len, c.decayed)
            }
            _ => {
                for x in &inputs {
                    bufs.push(buf[root[x.index()]].expect("inputs are scheduled before their readers"));
                }
                match addend_of[i] {
                    Some((mm, _, kind)) => match kernel_for(&nodes, mm, None, batch, mode)? {
                        Kernel::Matmul(m) => Kernel::Matmul(m.with_addend(kind)),
                        k => return Err(Error::shape(k.name(), "fused as a matmul")),
                    },
                    None => kernel_for(&nodes, i, fused_into[i], batch, mode)?,
                }
            }
        };
        plan.steps.push(Step { node: id, kernel, bufs });
        // Free what this step read (or wrote) for the last time.
        let mut ending: Vec<usize> = inputs.iter().map(|x| root[x.index()]).collect();
        ending.push(i);
        ending.sort_unstable();
        ending.dedup();
        for r in ending {
            if last_use[r] == Some(pos) {
                if let Some(Buf::Temp(_)) = buf[r] {
                    alive -= bytes(r);
                }
            }
        }
        plan.live.push(alive);
    }
    // the flat gradient buffers count where the plan binds them (a forward-only plan does not)
    let flat_bound =
        plan.steps.iter().flat_map(|s| &s.bufs).any(|b| matches!(b, Buf::Grad { .. } | Buf::Flat { .. }));
    if let (Some(layout), true) = (flat, flat_bound) {
        plan.grad_bytes = layout.grad_bytes();
    }
    naive += (0..n).filter(|&i| skip[i]).map(bytes).sum::<u64>();
    plan.naive_bytes = naive;
    plan.fetch = fetch.iter().map(|f| buf[root[f.index()]].expect("fetched nodes are live")).collect();
    plan.fetch_lens = fetch.iter().map(|f| nodes[f.index()].shape.numel(batch)).collect();
    Ok(plan)
}

/// For a node that is one of its inputs after an in-place write (or a view of it), that input's
/// position: its buffer is the node's.
fn in_place_of(op: &Op) -> Option<usize> {
    match op {
        Op::Reshape | Op::CacheWrite => Some(0),
        Op::ScaleUpdate { .. } => Some(2),
        _ => None,
    }
}

fn is_leaf(op: &Op) -> bool {
    matches!(op, Op::Input { .. } | Op::Fill { .. }) || op.is_persistent()
}

/// For an add of a matmul's product (through at most one reshape) that feeds nothing else and
/// another f32 tensor: the matmul, the other tensor, and how it is added (a `[n]` bias on every
/// row, or a tensor of the same shape).
fn matmul_addend(nodes: &[Node], add: usize, uses: &[usize]) -> Option<(usize, NodeId, Addend)> {
    let (p, q) = (nodes[add].inputs[0], nodes[add].inputs[1]);
    [(p, q), (q, p)].into_iter().find_map(|(prod, other)| {
        let mut mm = prod.index();
        if nodes[mm].op == Op::Reshape {
            if uses[mm] != 1 {
                return None;
            }
            mm = nodes[mm].inputs[0].index();
        }
        let Op::Prim(Prim::Matmul { .. }) = nodes[mm].op else { return None };
        let (so, sa) = (&nodes[other.index()].shape, &nodes[add].shape);
        let n = *nodes[mm].shape.0.last()?;
        let kind = if so == sa && nodes[mm].shape.numel(1) == sa.numel(1) {
            Addend::Full
        } else if so.rank() == 1
            && so.0[0] == n
            && sa.0.last() == Some(&n)
            && nodes[mm].shape.numel(1) == sa.numel(1)
        {
            Addend::Bias
        } else {
            return None;
        };
        let ok = uses[mm] == 1 && nodes[other.index()].dtype == DType::F32 && other != prod;
        ok.then_some((mm, other, kind))
    })
}

/// `(x, bias)` when `add` is `x + bias` (either order) with `bias: [cols]` and `x: [.., cols]`.
fn bias_pair(nodes: &[Node], add: &Node) -> Option<(NodeId, NodeId)> {
    let (p, q) = (add.inputs[0], add.inputs[1]);
    [(p, q), (q, p)].into_iter().find(|&(x, b)| {
        let (sx, sb) = (&nodes[x.index()].shape, &nodes[b.index()].shape);
        sx == &add.shape && sb.rank() == 1 && sx.rank() >= 1 && sx.0.last() == sb.0.first()
    })
}

/// The device kernel that computes node `i` at this batch size: the primitive's own lowering,
/// except for a fused bias + activation and the in-place updates.
fn kernel_for(
    nodes: &[Node],
    i: usize,
    fused: Option<(NodeId, NodeId)>,
    batch: usize,
    mode: Mode,
) -> Result<Kernel> {
    let node = &nodes[i];
    let dims = |id: NodeId| nodes[id.index()].shape.resolve(batch);
    Ok(match &node.op {
        Op::Prim(Prim::Unary { op, alpha }) if fused.is_some() => {
            let bias = fused.expect("checked").1;
            let (len, cols) = (node.shape.numel(batch), nodes[bias.index()].shape.numel(batch));
            Kernel::Unary(Unary::BiasAct { op: *op, rows: len / cols, cols, alpha: *alpha })
        }
        Op::Prim(p) => {
            let inputs: Vec<Vec<usize>> = node.inputs.iter().map(|&x| dims(x)).collect();
            let inputs: Vec<&[usize]> = inputs.iter().map(|d| d.as_slice()).collect();
            let dtypes: Vec<DType> = node.inputs.iter().map(|&x| nodes[x.index()].dtype).collect();
            p.lower_typed(&inputs, &dtypes, &node.shape.resolve(batch))?
        }
        Op::Update { rule, decay } => {
            rule.lower_with(nodes[node.inputs[0].index()].shape.numel(batch), *decay)
        }
        Op::RunningUpdate { keep, gain, unbiased_per_row } => {
            let target = &nodes[node.inputs[0].index()];
            let scale = match *unbiased_per_row {
                None => 1.0,
                Some(per_row) => {
                    let n = batch * per_row;
                    if n < 2 {
                        let name = match &target.op {
                            Op::Param { name } | Op::State { name } => name.as_str(),
                            _ => "?",
                        };
                        return Err(Error::shape(
                            "running_update",
                            format!(
                                "'{name}': an unbiased variance needs more than 1 value per channel, got \
                                 {n} (batch {batch} x {per_row})"
                            ),
                        ));
                    }
                    (n as f64 / (n as f64 - 1.0)) as f32
                }
            };
            Kernel::Running(RunningUpdate { len: target.shape.numel(batch), keep: *keep, gain: *gain, scale })
        }
        Op::Accumulate => {
            let len = nodes[node.inputs[0].index()].shape.numel(batch);
            match mode {
                Mode::Train => Kernel::Memory(Memory::Fill { len, value: 0.0 }),
                _ => Kernel::Running(RunningUpdate { len, keep: 1.0, gain: 1.0, scale: 1.0 }),
            }
        }
        Op::Unscale => Kernel::LossScale(LossScale::Unscale { len: node.shape.numel(batch) }),
        &Op::ScaleUpdate { growth, backoff, interval, adam } => {
            Kernel::LossScale(LossScale::Update { growth, backoff, interval, adam })
        }
        // [.., Tmax, inner] cache: rows go to positions along its second-to-last axis.
        Op::CacheWrite => {
            let cache = dims(node.inputs[0]);
            let r = cache.len();
            let (outer, axis_len) = (cache[..r - 2].iter().product(), cache[r - 2]);
            let n_idx = nodes[node.inputs[2].index()].shape.numel(batch);
            Kernel::Memory(Memory::WriteRows { outer, axis_len, inner: cache[r - 1], n_idx })
        }
        op => return Err(Error::shape(op.name(), "has no kernel")),
    })
}
