//! Data parallelism in one process: `Compile::devices = N` binds N replicas (one [`Session`] per
//! device, opened by `kiln_device::open_replica`: several CPU backends, each with its share of the
//! threads, or the best GPU adapters of one kind in turn: each GPU, or several devices on one). Each global batch is split into contiguous row ranges whose sizes differ by at
//! most one; every replica runs forward + backward on its rows (one submit each, in parallel
//! threads) and reads back its loss and gradients; the gradients are summed weighted by rows
//! (`rows_r / rows`: the gradient of the global batch's mean loss, exactly as one device computes
//! it, up to float32 summation order) through an [`AllReduce`]; replica 0 writes the sum into its
//! gradient state buffers and runs the update plan (one submit: clipping and the optimizer read
//! those buffers). The other replicas hold no optimizer: before each step they take replica 0's
//! parameters (one updates, the others receive a broadcast), so whatever sets replica 0 (load,
//! restore best weights, exact resume) reaches them. Saving reads replica 0 only.
//!
//! Across processes (`crate::distributed`, an MPI job): the global batch is first split over the
//! ranks (rank `r` takes `split_rows(rows, ranks)[r]`), then over this process's replicas; the
//! weights stay `rows_r / rows` of the global batch, the host sum goes through the group's
//! [`AllReduce`] (with the batch's loss appended, and the outputs gathered when a metric needs
//! them), and every rank's replica 0 applies the same update. A process is a data-parallel
//! binding even with one device when its group has several processes.
//!
//! Not done yet: overlapping the reduction with the backward pass (the gradients of one
//! submitted plan arrive together); [`StepTimes`] measures the reduction's share of the step.
//! BatchNorm is refused (its batch statistics would be per replica, and its running statistics
//! live in train plans).

use std::time::Instant;

use kiln_device::Backend;
use kiln_graph::{Feed, Graph, NodeId, Session};

use super::{Bound, Compile, Core, Heads, Trainable};
use crate::distributed::AllReduce;
use crate::{Error, Result};

/// Suffix of the state buffers replica 0's update plan reads its (reduced) gradients from; not
/// saved with the optimizer state.
pub(crate) const GRAD_SUFFIX: &str = ".reduced_grad";

/// Whether a session state is a data-parallel gradient buffer (not optimizer state).
pub(crate) fn is_grad_state(name: &str) -> bool {
    name.ends_with(GRAD_SUFFIX)
}

/// Where data-parallel training steps spend their time, summed over the steps.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepTimes {
    /// Data-parallel steps taken.
    pub steps: u64,
    /// Replica 0's parameters copied to the other replicas.
    pub broadcast_s: f64,
    /// Forward + backward on every replica in parallel, gradients read back.
    pub compute_s: f64,
    /// The weighted host sum, the [`AllReduce`] and the write into replica 0's gradient buffers.
    pub all_reduce_s: f64,
    /// Replica 0's update plan (clipping and the optimizer).
    pub update_s: f64,
    /// Of `all_reduce_s`, the time in the [`AllReduce`] across processes (MPI), predictions
    /// gathered for metrics included; 0 in one process.
    pub process_s: f64,
}

impl StepTimes {
    /// Seconds over every part.
    pub fn total_s(&self) -> f64 {
        self.broadcast_s + self.compute_s + self.all_reduce_s + self.update_s
    }
}

/// The replicas besides replica 0 (the bound session) and what a step needs.
pub(crate) struct Replicas {
    others: Vec<Session>,
    /// One thread pool per replica (replica 0 first): its share of the CPU threads.
    pools: Vec<rayon::ThreadPool>,
    /// The gradient nodes of the trained parameters, in the order of `trained`.
    grads: Vec<NodeId>,
    trained: Vec<String>,
    /// Elements of each trained parameter (a rank without rows in a batch sends zeros).
    sizes: Vec<usize>,
    /// Every parameter and buffer (what the broadcast copies).
    params: Vec<String>,
    comm: Box<dyn AllReduce>,
    pub times: StepTimes,
}

/// A replica's graph: the model, its loss and gradients; replica 0 (`master`) adds the gradient
/// state buffers, clipping on them and the optimizer. The nodes up to the gradients are the same
/// in both (the same build), so node ids are shared.
fn replica_graph(net: &dyn Trainable, config: &Compile, master: bool) -> Result<(Graph, Heads, Vec<NodeId>)> {
    let g = Graph::new();
    let heads = net.build(&g, config)?;
    g.check()?;
    if !heads.train.bn.is_empty() {
        return Err(Error::Model("training on several devices does not support BatchNorm yet".into()));
    }
    let trained: Vec<_> = heads.params.iter().filter(|(_, p)| !p.buffer).collect();
    let nodes: Vec<NodeId> = trained.iter().map(|(n, _)| *n).collect();
    let grads = g.gradients(heads.loss_train, &nodes)?;
    if master {
        let decay: Vec<bool> = trained.iter().map(|(_, p)| p.decay).collect();
        let mut fed: Vec<NodeId> =
            trained.iter().map(|(_, p)| g.cache(&format!("{}{GRAD_SUFFIX}", p.name), &p.shape)).collect();
        if let Some(max_norm) = config.clip_norm {
            fed = g.clip_grad_norm(&fed, max_norm).0;
        }
        g.optimize_with(&nodes, &fed, config.optimizer, &decay)?;
    }
    Ok((g, heads, grads))
}

/// Binds `config.devices` replicas: replica 0's session (with the optimizer) and the others.
pub(crate) fn bind(
    net: &dyn Trainable,
    config: &Compile,
    first: Option<Box<dyn Backend>>,
) -> Result<(Session, Heads, Replicas)> {
    let n = config.devices.max(1);
    let comm = crate::distributed::open_group();
    let open = |i| -> Result<Box<dyn Backend>> { Ok(kiln_device::open_replica(config.backend, i)?) };
    let (g, heads, grads) = replica_graph(net, config, true)?;
    let master = Session::new(g, first.map_or_else(|| open(0), Ok)?)?;
    let mut others = Vec::new();
    for i in 1..n {
        let (g, _, _) = replica_graph(net, config, false)?;
        others.push(Session::new(g, open(i)?)?);
    }
    let threads = (rayon::current_num_threads() / n).max(1);
    let pools = (0..n)
        .map(|_| rayon::ThreadPoolBuilder::new().num_threads(threads).build())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Model(format!("cannot start a replica's threads: {e}")))?;
    let trained_params = heads.params.iter().filter(|(_, p)| !p.buffer);
    let trained = trained_params.clone().map(|(_, p)| p.name.clone()).collect();
    let sizes = trained_params.map(|(_, p)| p.shape.iter().product()).collect();
    let params = heads.params.iter().map(|(_, p)| p.name.clone()).collect();
    let times = StepTimes::default();
    Ok((master, heads, Replicas { others, pools, grads, trained, sizes, params, comm, times }))
}

impl Core {
    /// Rebinds a bound model on `devices` replicas of `backend`, keeping its weights, optimizer
    /// state and step (a loaded model trains on several devices). Nothing happens when nothing
    /// changes.
    pub(crate) fn set_devices(
        &mut self,
        net: &dyn Trainable,
        devices: usize,
        backend: kiln_device::BackendChoice,
    ) -> Result<()> {
        let b = self.bound_mut()?;
        if b.config.devices.max(1) == devices.max(1) && b.config.backend == backend {
            return Ok(());
        }
        let mut config = b.config.clone();
        (config.devices, config.backend) = (devices.max(1), backend);
        self.rebind(net, config)
    }
}

/// Contiguous row ranges of `rows` over `n` replicas, sizes differing by at most one (fewer
/// ranges than replicas when there are fewer rows).
pub(crate) fn split_rows(rows: usize, n: usize) -> Vec<(usize, usize)> {
    let n = n.min(rows).max(1);
    let (base, extra) = (rows / n, rows % n);
    let mut at = 0;
    (0..n)
        .map(|i| {
            let len = base + usize::from(i < extra);
            at += len;
            (at - len, at)
        })
        .collect()
}

/// Rows `[lo, hi)` of every feed (each is `[rows, ...]`).
fn slice_feeds<'a>(feeds: &[Feed<'a>], rows: usize, (lo, hi): (usize, usize)) -> Vec<Feed<'a>> {
    feeds
        .iter()
        .map(|&(node, data)| {
            let w = data.len() / rows;
            (node, data.slice(lo * w..hi * w))
        })
        .collect()
}

/// One data-parallel training step on the global batch `feeds` (`rows` rows), at the learning
/// rate already set on replica 0. Returns the batch's mean loss and, when `out` is given, that
/// output for every row in order.
pub(crate) fn step(
    b: &mut Bound,
    feeds: &[Feed<'_>],
    rows: usize,
    out: Option<NodeId>,
) -> Result<(f32, Vec<f32>)> {
    let Bound { session: master, heads, replicas, .. } = b;
    let r = replicas.as_mut().expect("a data-parallel binding");
    let t0 = Instant::now();
    for name in &r.params {
        let v = master.get_param(name)?;
        for s in &mut r.others {
            s.set_param(name, &v)?;
        }
    }
    let t1 = Instant::now();

    // this process's rows of the global batch (none when it has fewer rows than processes),
    // split again over its replicas
    let (rank, procs) = (r.comm.rank(), r.comm.size());
    let global = split_rows(rows, procs);
    let (lo, hi) = global.get(rank).copied().unwrap_or((rows, rows));
    let ranges: Vec<(usize, usize)> = if hi > lo {
        split_rows(hi - lo, 1 + r.others.len()).into_iter().map(|(a, b)| (lo + a, lo + b)).collect()
    } else {
        Vec::new()
    };
    let mut fetch = vec![heads.loss_train];
    fetch.extend(out);
    fetch.extend(&r.grads);
    let fetch = &fetch;
    let sessions = std::iter::once(master).chain(r.others.iter_mut());
    let results: Vec<Result<Vec<Vec<f32>>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .zip(&r.pools)
            .zip(&ranges)
            .map(|((s, pool), &range)| {
                let part = slice_feeds(feeds, rows, range);
                scope.spawn(move || pool.install(|| Ok(s.run_sync(&part, fetch)?)))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a replica's thread panicked")).collect()
    });
    let outs = results.into_iter().collect::<Result<Vec<_>>>()?;
    let t2 = Instant::now();

    let g0 = 1 + usize::from(out.is_some());
    let mut loss = 0.0f64;
    let mut pred = Vec::new();
    let mut grads: Vec<Vec<f32>> = r.sizes.iter().map(|&n| vec![0.0; n]).collect();
    for (o, &(lo, hi)) in outs.iter().zip(&ranges) {
        let w = (hi - lo) as f32 / rows as f32;
        loss += f64::from(w) * f64::from(o[0].first().copied().unwrap_or(f32::NAN));
        if out.is_some() {
            pred.extend_from_slice(&o[1]);
        }
        for (sum, g) in grads.iter_mut().zip(&o[g0..]) {
            sum.iter_mut().zip(g).for_each(|(s, x)| *s += w * x);
        }
    }
    let tp = Instant::now();
    if procs > 1 {
        // the batch's loss travels with the gradients (its share, weighted by rows, summed)
        grads.push(vec![loss as f32]);
        r.comm.all_reduce_sum(&mut grads)?;
        loss = f64::from(grads.pop().expect("pushed above")[0]);
        if out.is_some() {
            let width = heads.out_width;
            let counts: Vec<usize> =
                (0..procs).map(|p| global.get(p).map_or(0, |(a, b)| (b - a) * width)).collect();
            pred = r.comm.all_gather(&pred, &counts)?;
        }
    } else {
        r.comm.all_reduce_sum(&mut grads)?;
    }
    r.times.process_s += tp.elapsed().as_secs_f64();
    let master = &mut b.session;
    for (name, g) in r.trained.iter().zip(&grads) {
        master.set_state(&format!("{name}{GRAD_SUFFIX}"), g)?;
    }
    let t3 = Instant::now();
    master.train_sync(&[], &[])?;
    let t4 = Instant::now();

    let times = &mut r.times;
    times.steps += 1;
    times.broadcast_s += (t1 - t0).as_secs_f64();
    times.compute_s += (t2 - t1).as_secs_f64();
    times.all_reduce_s += (t3 - t2).as_secs_f64();
    times.update_s += (t4 - t3).as_secs_f64();
    Ok((loss as f32, pred))
}

/// The rows of a batch of feeds (the first feed's length over its input's elements per row).
pub(crate) fn rows_of(session: &Session, feeds: &[Feed<'_>]) -> usize {
    feeds.first().map_or(1, |(node, data)| {
        let (per, _) = session.graph().node(*node).shape.symbolic_numel();
        data.len() / per.max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::split_rows;

    #[test]
    fn rows_split_contiguously_within_one() {
        assert_eq!(split_rows(10, 3), vec![(0, 4), (4, 7), (7, 10)]);
        assert_eq!(split_rows(2, 3), vec![(0, 1), (1, 2)]);
        assert_eq!(split_rows(9, 3), vec![(0, 3), (3, 6), (6, 9)]);
    }
}
