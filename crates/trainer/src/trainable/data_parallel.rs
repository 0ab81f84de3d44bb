//! Data parallelism in one process: `Compile::devices = N` binds N replicas (one [`Session`] per
//! device, opened by `kiln_device::open_replica`: several CPU backends, each with its share of the
//! threads, or the best GPU adapters of one kind in turn: each GPU, or several devices on one).
//! Each global batch is split into contiguous row ranges whose sizes differ by at most one; every
//! replica runs forward + backward on its rows in its own thread and reads back its loss and
//! gradients; the gradients are summed weighted by rows (`rows_r / rows`: the gradient of the
//! global batch's mean loss, exactly as one device computes it, up to float32 summation order)
//! through an [`AllReduce`]; replica 0 writes the sum into its gradient state buffers and runs
//! the update plan (one submit: clipping and the optimizer read those buffers). The other
//! replicas hold no optimizer: before each step they take replica 0's parameters (one updates,
//! the others receive a broadcast), so whatever sets replica 0 (load, restore best weights, exact
//! resume) reaches them. Saving reads replica 0 only.
//!
//! Overlap (`Compile::bucket_mb`, `buckets.rs`): the gradients are grouped into buckets in the
//! order the backward pass completes them, and each replica runs its forward + backward as one
//! submitted part per bucket ([`Session::run_in_parts`]), sending bucket k's gradients as soon as
//! its part is read back. The calling thread is the reducing one: it sums bucket k over the
//! replicas and hands it to the [`AllReduce`] (MPI's calls stay on the thread that initialized
//! it) while the replicas compute the next parts. Each element is summed exactly as one
//! reduction after the whole backward sums it (in replica order from zero, then across
//! processes, which for 2 ranks is one commutative addition), so the losses and weights are bit
//! for bit those of `bucket_mb = 0`, which reads every gradient in one part.
//!
//! Across processes (`crate::distributed`, an MPI job): the global batch is first split over the
//! ranks (rank `r` takes `split_rows(rows, ranks)[r]`), then over this process's replicas; the
//! weights stay `rows_r / rows` of the global batch, the host sums go through the group's
//! [`AllReduce`] (with the batch's loss appended to the last bucket, and the outputs gathered
//! when a metric needs them), and every rank's replica 0 applies the same update. A process is a
//! data-parallel binding even with one device when its group has several processes.
//!
//! [`StepTimes`] splits the step into compute, the reduction left after it (exposed) and the
//! reduction hidden behind it. BatchNorm is refused (its batch statistics would be per replica,
//! and its running statistics live in train plans).

use std::sync::mpsc;
use std::time::Instant;

use kiln_device::Backend;
use kiln_graph::{Feed, Graph, Mode, NodeId, Session};

use super::buckets::{bucket_bytes, buckets};
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
    /// Forward + backward on every replica in parallel, gradients read back: until the last
    /// replica has read back its last bucket.
    pub compute_s: f64,
    /// The reduction left once every replica is done (exposed): the weighted host sums and the
    /// [`AllReduce`] of the buckets not yet reduced (at least the last), the outputs gathered
    /// for a metric, the write into replica 0's gradient buffers.
    pub all_reduce_s: f64,
    /// Reduction (host sums and [`AllReduce`]) that ran while a replica still computed: hidden
    /// behind the backward pass, not part of the step time.
    pub hidden_s: f64,
    /// Replica 0's update plan (clipping and the optimizer).
    pub update_s: f64,
    /// The time in the [`AllReduce`] across processes (MPI), hidden or exposed, predictions
    /// gathered for metrics included; ~0 in one process.
    pub process_s: f64,
}

impl StepTimes {
    /// Seconds over every part.
    pub fn total_s(&self) -> f64 {
        self.broadcast_s + self.compute_s + self.all_reduce_s + self.update_s
    }

    /// The times since `before` (an earlier reading of the same model's times).
    pub fn since(&self, before: &StepTimes) -> StepTimes {
        StepTimes {
            steps: self.steps - before.steps,
            broadcast_s: self.broadcast_s - before.broadcast_s,
            compute_s: self.compute_s - before.compute_s,
            all_reduce_s: self.all_reduce_s - before.all_reduce_s,
            hidden_s: self.hidden_s - before.hidden_s,
            update_s: self.update_s - before.update_s,
            process_s: self.process_s - before.process_s,
        }
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
    /// The launches after which each gradient is complete in a forward + backward plan.
    ready: Vec<usize>,
    /// The gradients reduced together, bucket by bucket (indices into `trained`; `buckets.rs`).
    buckets: Vec<Vec<usize>>,
    /// Every parameter and buffer (what the broadcast copies).
    params: Vec<String>,
    comm: Box<dyn AllReduce>,
    pub times: StepTimes,
}

/// A replica's graph: the model, its loss and gradients; replica 0 (`master`) adds the gradient
/// state buffers, clipping on them and the optimizer. The nodes up to the gradients are the same
/// in both (the same build), so node ids are shared.
fn replica_graph(net: &dyn Trainable, config: &Compile, master: bool) -> Result<(Graph, Heads, Vec<NodeId>)> {
    let g = super::model_graph(config);
    let heads = net.build(&g, config)?;
    g.check()?;
    if !heads.train.bn.is_empty() {
        return Err(Error::Model("training on several devices does not support BatchNorm yet".into()));
    }
    let trained: Vec<_> = heads.params.iter().filter(|(_, p)| !p.buffer).collect();
    let nodes: Vec<NodeId> = trained.iter().map(|(n, _)| *n).collect();
    // every replica scales its loss by its own copy of replica 0's scale (see `step`)
    super::declare_scaler(&g, config)?;
    let grads = g.gradients(heads.loss_train, &nodes)?;
    if master {
        let decay: Vec<bool> = trained.iter().map(|(_, p)| p.decay).collect();
        let mut fed: Vec<NodeId> =
            trained.iter().map(|(_, p)| g.cache(&format!("{}{GRAD_SUFFIX}", p.name), &p.shape)).collect();
        if g.scaler().is_some() {
            // the sum over replicas (and processes): an overflow anywhere reaches it as inf or NaN
            fed = g.unscale_gradients(&fed)?;
        }
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
    let sizes: Vec<usize> = trained_params.map(|(_, p)| p.shape.iter().product()).collect();
    // the order the backward pass completes the gradients in (the same at every batch size)
    let mut fetch = vec![heads.loss_train];
    fetch.extend(&grads);
    let ready = kiln_graph::compile_mode(master.graph(), &fetch, Mode::Run, 1)?.fetch_ready()[1..].to_vec();
    let buckets = buckets(&ready, &sizes, bucket_bytes(config.bucket_mb));
    let params = heads.params.iter().map(|(_, p)| p.name.clone()).collect();
    let times = StepTimes::default();
    Ok((
        master,
        heads,
        Replicas { others, pools, grads, trained, sizes, ready, buckets, params, comm, times },
    ))
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

impl Core {
    /// Sets [`Compile::bucket_mb`] of a bound model from the next step on (no rebinding: the
    /// buckets are regrouped).
    pub(crate) fn set_bucket_mb(&mut self, mb: f64) -> Result<()> {
        let b = self.bound_mut()?;
        b.config.bucket_mb = mb;
        if let Some(r) = &mut b.replicas {
            r.buckets = buckets(&r.ready, &r.sizes, bucket_bytes(mb));
        }
        Ok(())
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
    if master.graph().scaler().is_some() {
        // the scale replica 0's last update left (one word)
        let scale = master.get_state(kiln_graph::LOSS_SCALE)?;
        for s in &mut r.others {
            s.set_state(kiln_graph::LOSS_SCALE, &scale)?;
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
    let lead = fetch.len();
    fetch.extend(&r.grads);
    // part k of a replica's forward + backward reads bucket k (the loss and outputs with the first)
    let parts: Vec<Vec<usize>> = r
        .buckets
        .iter()
        .enumerate()
        .map(|(k, bucket)| {
            let first = if k == 0 { 0..lead } else { 0..0 };
            first.chain(bucket.iter().map(|&j| lead + j)).collect()
        })
        .collect();
    let (fetch, parts) = (&fetch, &parts);
    let Replicas { others, pools, buckets, sizes, comm, .. } = &mut *r;
    let sessions = std::iter::once(&mut *master).chain(others.iter_mut());
    let (tx, rx) = mpsc::channel::<Arrived>();
    let reduced = std::thread::scope(|scope| {
        let handles: Vec<_> = sessions
            .zip(pools.iter())
            .zip(&ranges)
            .enumerate()
            .map(|(i, ((s, pool), &range))| {
                let part = slice_feeds(feeds, rows, range);
                let tx = tx.clone();
                scope.spawn(move || {
                    pool.install(|| {
                        // a send fails only when the reduction stopped on an error of its own
                        let arrive = |k, outs| drop(tx.send((i, k, outs, Instant::now())));
                        Ok::<_, Error>(s.run_in_parts(&part, fetch, parts, arrive)?)
                    })
                })
            })
            .collect();
        drop(tx);
        // this thread reduces each bucket as soon as every replica has read it back
        let reduction = Reduction { ranges: &ranges, rows, lead, buckets, sizes, start: t1 };
        let reduced = reduction.run(rx, comm.as_mut());
        for h in handles {
            h.join().expect("a replica's thread panicked")?;
        }
        reduced
    })?;
    let Reduced { grads, loss, mut pred, computed, hidden_s, process_s } = reduced;
    let tg = Instant::now();
    if procs > 1 && out.is_some() {
        let width = heads.out_width;
        let counts: Vec<usize> =
            (0..procs).map(|p| global.get(p).map_or(0, |(a, b)| (b - a) * width)).collect();
        pred = r.comm.all_gather(&pred, &counts)?;
    }
    r.times.process_s += process_s + tg.elapsed().as_secs_f64();
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
    times.compute_s += (computed - t1).as_secs_f64();
    times.all_reduce_s += (t3 - computed).as_secs_f64();
    times.hidden_s += hidden_s;
    times.update_s += (t4 - t3).as_secs_f64();
    Ok((loss as f32, pred))
}

/// Replica `i` read back part `k` (its outputs) at that instant.
type Arrived = (usize, usize, Vec<Vec<f32>>, Instant);

/// What the reduction of one step needs besides the arriving parts.
struct Reduction<'a> {
    /// The rows of each replica that runs (in replica order).
    ranges: &'a [(usize, usize)],
    /// Rows of the global batch.
    rows: usize,
    /// Outputs before the gradients in the first part (the loss, and the output a metric needs).
    lead: usize,
    buckets: &'a [Vec<usize>],
    sizes: &'a [usize],
    /// When the replicas started.
    start: Instant,
}

/// The reduced gradients of a step (in the order of the trained parameters), its loss summed
/// over every process, this process's outputs, and when the last replica finished computing.
struct Reduced {
    grads: Vec<Vec<f32>>,
    loss: f64,
    pred: Vec<f32>,
    computed: Instant,
    /// Reduction time (host sums and [`AllReduce`]) spent while a replica still computed.
    hidden_s: f64,
    /// Time in the [`AllReduce`].
    process_s: f64,
}

impl Reduction<'_> {
    /// Sums bucket after bucket, each as soon as every replica has sent it: the replicas' parts
    /// weighted by rows (`rows_r / rows`, in replica order from zero, as one reduction after
    /// the whole backward adds them), then across processes; the batch's loss travels with the
    /// last bucket. An error when a replica stops sending (its own error is the one reported).
    fn run(&self, rx: mpsc::Receiver<Arrived>, comm: &mut dyn AllReduce) -> Result<Reduced> {
        let (n, nb) = (self.ranges.len(), self.buckets.len());
        let mut inbox: Vec<Vec<Option<Vec<Vec<f32>>>>> = vec![vec![None; n]; nb];
        let mut grads: Vec<Vec<f32>> = vec![Vec::new(); self.sizes.len()];
        let (mut loss, mut pred, mut computed) = (0.0f64, Vec::new(), self.start);
        let (mut busy, mut process_s) = (Vec::with_capacity(nb), 0.0);
        for k in 0..nb {
            while inbox[k].iter().any(Option::is_none) {
                let (i, part, outs, at) = rx.recv().map_err(|_| {
                    Error::Model("a data-parallel replica stopped before sending its gradients".into())
                })?;
                if part + 1 == nb {
                    computed = computed.max(at);
                }
                inbox[part][i] = Some(outs);
            }
            let began = Instant::now();
            let bucket = &self.buckets[k];
            let mut sum: Vec<Vec<f32>> = bucket.iter().map(|&j| vec![0.0; self.sizes[j]]).collect();
            for (outs, &(lo, hi)) in inbox[k].iter_mut().zip(self.ranges) {
                let outs = outs.take().expect("arrived above");
                let w = (hi - lo) as f32 / self.rows as f32;
                let first = if k == 0 {
                    loss += f64::from(w) * f64::from(outs[0].first().copied().unwrap_or(f32::NAN));
                    if self.lead > 1 {
                        pred.extend_from_slice(&outs[1]);
                    }
                    self.lead
                } else {
                    0
                };
                for (s, g) in sum.iter_mut().zip(&outs[first..]) {
                    s.iter_mut().zip(g).for_each(|(s, x)| *s += w * x);
                }
            }
            let last = k + 1 == nb;
            if last {
                sum.push(vec![loss as f32]);
            }
            let tp = Instant::now();
            comm.all_reduce_sum(&mut sum)?;
            process_s += tp.elapsed().as_secs_f64();
            if last {
                loss = f64::from(sum.pop().expect("pushed above")[0]);
            }
            for (&j, g) in bucket.iter().zip(sum) {
                grads[j] = g;
            }
            busy.push((began, Instant::now()));
        }
        let hidden_s =
            busy.iter().map(|&(a, b)| b.min(computed).saturating_duration_since(a).as_secs_f64()).sum();
        Ok(Reduced { grads, loss, pred, computed, hidden_s, process_s })
    }
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
