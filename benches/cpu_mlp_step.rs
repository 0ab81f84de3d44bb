//! Training steps per second of a 64 -> 128 -> 128 -> 10 MLP at batch 64 on the CPU backend, with
//! the launches a compiled training step is made of (forward, softmax cross-entropy, backward, Adam),
//! hand-written here since the graph compiler lives above this crate. Target: > 2,000 steps/s.
//! Prints `bench=mlp_step backend=cpu steps_per_s=...`.

use std::time::Instant;

use kiln_device::cpu::CpuBackend;
use kiln_device::{
    Backend, BinaryOp, BufferId, DType, HostData, Kernel, Launch, Matmul, ReduceOp, UnaryOp, HYPER_LEN,
};

const BATCH: usize = 64;
const DIMS: [usize; 4] = [64, 128, 128, 10];

fn main() -> anyhow::Result<()> {
    let mut be = CpuBackend::new();
    let mut seed = 1u32;
    let mut noise = |n: usize| -> Vec<f32> {
        (0..n)
            .map(|_| {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (seed >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    };
    let f32_buf = |be: &mut CpuBackend, data: Vec<f32>| be.upload(HostData::F32(&data));
    let x = f32_buf(&mut be, noise(BATCH * DIMS[0]))?;
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    let labels = be.upload(HostData::U32(&labels))?;
    let hyper = f32_buf(&mut be, {
        let mut h = vec![1e-3, 0.9, 0.999, 1e-8, 0.0, 0.1, 0.001];
        h.resize(HYPER_LEN, 0.0);
        h
    })?;
    let (loss, dloss) = (be.alloc(DType::F32, 1)?, f32_buf(&mut be, vec![1.0])?);

    // Per layer: weight [in, out], bias [out], their grads and Adam state; activations.
    struct Layer {
        w: BufferId,
        b: BufferId,
        dw: BufferId,
        db: BufferId,
        state: [BufferId; 4],
        pre: BufferId,
        out: BufferId,
        dout: BufferId,
        dpre: BufferId,
    }
    let mut layers = Vec::new();
    for l in 0..3 {
        let (i, o) = (DIMS[l], DIMS[l + 1]);
        let mut zeros = |n: usize| f32_buf(&mut be, vec![0.0; n]);
        let state = [zeros(i * o)?, zeros(i * o)?, zeros(o)?, zeros(o)?];
        layers.push(Layer {
            w: f32_buf(&mut be, noise(i * o))?,
            b: f32_buf(&mut be, noise(o))?,
            dw: be.alloc(DType::F32, i * o)?,
            db: be.alloc(DType::F32, o)?,
            state,
            pre: be.alloc(DType::F32, BATCH * o)?,
            out: be.alloc(DType::F32, BATCH * o)?,
            dout: be.alloc(DType::F32, BATCH * o)?,
            dpre: be.alloc(DType::F32, BATCH * o)?,
        });
    }

    let mut launches = Vec::new();
    // forward
    for (l, layer) in layers.iter().enumerate() {
        let (i, o) = (DIMS[l], DIMS[l + 1]);
        let input = if l == 0 { x } else { layers[l - 1].out };
        launches.push(Launch::new(Kernel::Matmul(Matmul::new(BATCH, o, i)), &[layer.pre, input, layer.w]));
        let act = if l < 2 {
            Kernel::BiasAct { op: UnaryOp::Relu, rows: BATCH, cols: o, alpha: 0.0 }
        } else {
            let bc = kiln_device::Broadcast::new("add", &[BATCH, o], &[o])?;
            Kernel::Binary { op: BinaryOp::Add, bc }
        };
        launches.push(Launch::new(act, &[layer.out, layer.pre, layer.b]));
    }
    let logits = layers[2].out;
    launches.push(Launch::new(Kernel::SoftmaxCeLoss { rows: BATCH, cols: 10 }, &[loss, logits, labels]));
    launches.push(Launch::new(
        Kernel::SoftmaxCeGrad { rows: BATCH, cols: 10 },
        &[layers[2].dpre, logits, labels, dloss],
    ));
    // backward
    for l in (0..3).rev() {
        let (i, o) = (DIMS[l], DIMS[l + 1]);
        let layer = &layers[l];
        if l < 2 {
            let relu_grad = Kernel::UnaryGrad { op: UnaryOp::Relu, len: BATCH * o, alpha: 0.0 };
            launches.push(Launch::new(relu_grad, &[layer.dpre, layer.out, layer.dout]));
        }
        let input = if l == 0 { x } else { layers[l - 1].out };
        let dw = Matmul { m: i, n: o, k: BATCH, trans_a: true, ..Matmul::new(i, o, BATCH) };
        launches.push(Launch::new(Kernel::Matmul(dw), &[layer.dw, input, layer.dpre]));
        let db = Kernel::Reduce { op: ReduceOp::Sum, outer: 1, len: BATCH, inner: o };
        launches.push(Launch::new(db, &[layer.db, layer.dpre]));
        if l > 0 {
            let dx = Matmul { trans_b: true, ..Matmul::new(BATCH, i, o) };
            launches.push(Launch::new(Kernel::Matmul(dx), &[layers[l - 1].dout, layer.dpre, layer.w]));
        }
    }
    // update
    for layer in &layers {
        let [mw, vw, mb, vb] = layer.state;
        let (nw, nb) = (be.describe(layer.w)?.1, be.describe(layer.b)?.1);
        let adam = |len| Kernel::Adam { len, decoupled: true };
        launches.push(Launch::new(adam(nw), &[layer.w, layer.dw, hyper, mw, vw]));
        launches.push(Launch::new(adam(nb), &[layer.b, layer.db, hyper, mb, vb]));
    }

    let plan = be.compile(&launches)?;
    let step = |be: &mut CpuBackend| -> anyhow::Result<()> {
        let ticket = be.submit(plan, &[])?;
        be.wait(ticket)?;
        Ok(())
    };
    for _ in 0..200 {
        step(&mut be)?;
    }
    let created = be.stats().buffers_created;
    let (steps, start) = (2000, Instant::now());
    for _ in 0..steps {
        step(&mut be)?;
    }
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(be.stats().buffers_created, created, "a step must allocate no buffer");
    let final_loss = be.read_f32(loss)?[0];
    eprintln!("# {} launches per step, final loss {final_loss:.4}", launches.len());
    println!(
        "bench=mlp_step backend=cpu steps_per_s={:.0} us_per_step={:.1}",
        steps as f64 / secs,
        secs / steps as f64 * 1e6
    );
    Ok(())
}
