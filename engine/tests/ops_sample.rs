//! Op tests for sample.wgsl: greedy argmax (ties, row choice) and temperature + top-k + top-p
//! sampling, token for token against reference/sample.rs, plus a histogram check.

use wgllama_engine::ops::sample::{
    greedy_kernels, greedy_with, sample, Greedy, SampleRng, Sampling,
};
use wgllama_engine::reference::sample as reference;
use wgllama_engine::step::Step;
use wgllama_engine::testing::{test_gpu, Rng};
use wgllama_engine::{EngineError, Gpu, Tensor};

/// The GPU sums masses in f32, the reference in f64 and in another order. For u = 1 - 2^-24
/// (rand = u32::MAX) the target lies within 2^-24 of the end of the kept mass, among tail tokens
/// whose masses are below f32 resolution: there the GPU may pick any token whose interval of
/// the running probability comes within this much of u. Every other draw must match exactly.
const NEAR_TIE: f64 = 1e-5;
const LAST_RAND: u32 = u32::MAX;

/// Runs one `sample` dispatch per rand (each with its own step buffer and tokens slot),
/// a few hundred per submission, and returns the chosen tokens.
fn draw(gpu: &Gpu, logits: &Tensor, s: &Sampling, n_tokens: u32, rands: &[u32]) -> Vec<u32> {
    let n = rands.len();
    let tokens = gpu.upload_u32("tokens", &vec![u32::MAX; n], &[n]).unwrap();
    let steps: Vec<wgpu::Buffer> = rands
        .iter()
        .map(|&rand| step_buffer(gpu, n_tokens, rand))
        .collect();
    let dispatches: Vec<_> = steps
        .iter()
        .enumerate()
        .map(|(j, step)| sample(gpu, logits, step, &tokens, j, s).unwrap())
        .collect();
    for chunk in dispatches.chunks(256) {
        gpu.run(chunk).unwrap();
    }
    gpu.read_u32(&tokens).unwrap()
}

/// A step buffer at position 0 with `n_tokens` and `rand`.
fn step_buffer(gpu: &Gpu, n_tokens: u32, rand: u32) -> wgpu::Buffer {
    let step = Step {
        pos: 0,
        n_tokens,
        rand,
        _pad: 0,
    };
    gpu.upload_bytes("step", bytemuck::bytes_of(&step)).unwrap()
}

/// The token one greedy dispatch through `kernel` picks from the one row of `logits`.
fn greedy_via(gpu: &Gpu, logits: &Tensor, kernel: Greedy) -> u32 {
    let tokens = gpu.upload_u32("tokens", &[u32::MAX], &[1]).unwrap();
    let step = step_buffer(gpu, 1, 0);
    let d = greedy_with(gpu, logits, &step, &tokens, 0, kernel).unwrap();
    gpu.run(&[d]).unwrap();
    gpu.read_u32(&tokens).unwrap()[0]
}

/// LM-like logits: noise plus a couple of dozen strongly preferred tokens, so the mass is
/// concentrated as in real models and cumulative near-ties are rare.
fn peaked_logits(rng: &mut Rng, v: usize) -> Vec<f32> {
    let mut x = rng.normal_vec(v, 1.0);
    for _ in 0..v.min(24) {
        let i = rng.below(v as u64) as usize;
        x[i] += rng.uniform(6.0, 16.0);
    }
    x
}

/// Checks every draw against the reference: random draws exactly, LAST_RAND up to a near-tie.
fn check_draws(case: &str, logits: &[f32], s: &Sampling, rands: &[u32], got: &[u32]) {
    let kept = reference::kept(logits, s);
    for (&rand, &token) in rands.iter().zip(got) {
        let u = reference::unit(rand);
        let want = reference::pick(&kept, u);
        if rand == LAST_RAND && token != want {
            // With top_p shifted by up to NEAR_TIE the GPU's token is kept, and its interval
            // of the running probability comes within NEAR_TIE of u.
            let near_tie = [-NEAR_TIE, 0.0, NEAR_TIE].iter().any(|&dp| {
                let mut cum = 0.0;
                reference::kept_with_top_p(logits, s, s.top_p as f64 + dp)
                    .iter()
                    .any(|&(t, prob)| {
                        let (lo, hi) = (cum, cum + prob);
                        cum = hi;
                        t == token && lo <= u + NEAR_TIE && hi >= u - NEAR_TIE
                    })
            });
            assert!(
                near_tie,
                "{case} rand={rand:#010x} (u={u}): GPU chose {token}, reference {want}, not a near-tie"
            );
            continue;
        }
        assert_eq!(
            token, want,
            "{case} rand={rand:#010x} (u={u}): GPU chose {token}, reference {want}"
        );
    }
}

#[test]
fn greedy_picks_the_first_maximum() {
    let gpu = test_gpu();
    let greedy = Sampling::greedy();
    for (i, &v) in [1usize, 1000, 4097, 128256].iter().enumerate() {
        let mut rng = Rng::new(200 + i as u64);
        let mut x = rng.normal_vec(v, 2.0);
        // Ties for the maximum, the lowest of them (not necessarily in invocation 0) must win.
        let top = 20.0;
        let mut tied: Vec<usize> = (0..3).map(|_| rng.below(v as u64) as usize).collect();
        tied.push((tied[0] + 128) % v); // the same invocation's next element
        tied.push((tied[0] + 1) % v); // the neighbouring invocation
        tied.push((tied[0] + 1024) % v); // greedy_wide: the same lane's next element
        tied.push((tied[0] + 8192) % v); // greedy_wide: the same lane's next round
        tied.push((tied[0] + 32768) % v); // greedy_wide: a later round
        tied.push((tied[0] + 2048) % v); // greedy_split: the next workgroup's chunk
        for &t in &tied {
            x[t] = top;
        }
        let tx = gpu.upload_f32("logits", &x, &[1, v]).unwrap();
        let want = reference::argmax(&x);
        assert_eq!(want as usize, *tied.iter().min().unwrap());
        let top1 = Sampling {
            temperature: 0.8,
            top_k: 1,
            top_p: 1.0,
        };
        for s in [greedy, top1] {
            let got = draw(gpu, &tx, &s, 1, &[12345])[0];
            assert_eq!(
                got, want,
                "argmax vocab={v} ties at {tied:?} sampling {s:?}"
            );
        }
        for kernel in greedy_kernels(gpu) {
            assert_eq!(
                greedy_via(gpu, &tx, kernel),
                want,
                "argmax vocab={v} ties at {tied:?} kernel {kernel:?}"
            );
        }
    }
    // All equal: index 0. +0 ranks above -0 (total order), as in the reference.
    for x in [vec![0.5f32; 300], vec![-0.0, 0.0, -0.0, 0.0]] {
        let tx = gpu.upload_f32("logits", &x, &[x.len()]).unwrap();
        let got = draw(gpu, &tx, &greedy, 1, &[0])[0];
        assert_eq!(got, reference::argmax(&x), "argmax of {:?}", &x[..4]);
        for kernel in greedy_kernels(gpu) {
            assert_eq!(
                greedy_via(gpu, &tx, kernel),
                got,
                "{kernel:?} on {:?}",
                &x[..4]
            );
        }
    }
}

#[test]
fn greedy_split_reruns_with_its_ticket_reset() {
    // greedy_split's last workgroup resets the ticket; a recorded dispatch replayed over new
    // logits (as decode replays its graph) must pick each new maximum, wherever it lies.
    let gpu = test_gpu();
    if !greedy_kernels(gpu).contains(&Greedy::Split) {
        return;
    }
    let v = 32000;
    let mut rng = Rng::new(77);
    let tx = gpu
        .upload_f32("logits", &rng.normal_vec(v, 1.0), &[1, v])
        .unwrap();
    let step = step_buffer(gpu, 1, 0);
    let tokens = gpu.upload_u32("tokens", &[u32::MAX], &[1]).unwrap();
    let d = greedy_with(gpu, &tx, &step, &tokens, 0, Greedy::Split).unwrap();
    for (run, at) in [31999usize, 0, 2047, 2048, 17000].into_iter().enumerate() {
        let mut x = rng.normal_vec(v, 1.0);
        x[at] = 50.0;
        gpu.queue
            .write_buffer(&tx.buffer, 0, bytemuck::cast_slice(&x));
        gpu.run(std::slice::from_ref(&d)).unwrap();
        assert_eq!(
            gpu.read_u32(&tokens).unwrap()[0] as usize,
            at,
            "greedy_split replay {run}: maximum at {at}"
        );
    }
}

#[test]
fn the_batch_last_row_is_sampled() {
    let gpu = test_gpu();
    let (rows, v) = (3, 1000);
    let mut rng = Rng::new(300);
    let x = peaked_logits(&mut rng, rows * v);
    let tx = gpu.upload_f32("logits", &x, &[rows, v]).unwrap();
    let s = Sampling {
        temperature: 1.0,
        top_k: 40,
        top_p: 0.9,
    };
    // n_tokens 0 (treated as 1) and past the last row clamp to the ends.
    for (n_tokens, row) in [(0u32, 0usize), (1, 0), (2, 1), (3, 2), (7, 2)] {
        let want_row = &x[row * v..(row + 1) * v];
        let got = draw(gpu, &tx, &Sampling::greedy(), n_tokens, &[0])[0];
        assert_eq!(
            got,
            reference::argmax(want_row),
            "greedy n_tokens={n_tokens}"
        );
        let rands = [0x1234_5678, 0x9abc_def0, 0xffff_ffff];
        let got = draw(gpu, &tx, &s, n_tokens, &rands);
        let case = format!("rows={rows} vocab={v} n_tokens={n_tokens} {s:?}");
        check_draws(&case, want_row, &s, &rands, &got);
    }
}

/// Checks `draws` draws (u = 0, u = 1 - 2^-24, then random) for each temperature (with fresh
/// logits) and each (top_k, top_p).
fn sample_cases(v: usize, temps: &[f32], kp: &[(u32, f32)], draws: usize, seed: u64) {
    let gpu = test_gpu();
    let mut rng = Rng::new(seed);
    let mut rand_rng = SampleRng::new(seed);
    for &temperature in temps {
        let x = peaked_logits(&mut rng, v);
        let tx = gpu.upload_f32("logits", &x, &[1, v]).unwrap();
        for &(top_k, top_p) in kp {
            let s = Sampling {
                temperature,
                top_k,
                top_p,
            };
            let mut rands = vec![0, LAST_RAND];
            rands.extend((2..draws).map(|_| rand_rng.next_rand()));
            let got = draw(gpu, &tx, &s, 1, &rands);
            check_draws(&format!("vocab={v} {s:?}"), &x, &s, &rands, &got);
        }
    }
}

const ALL_KP: [(u32, f32); 12] = [
    (0, 1.0),
    (0, 0.9),
    (0, 0.5),
    (1, 1.0),
    (1, 0.9),
    (1, 0.5),
    (5, 1.0),
    (5, 0.9),
    (5, 0.5),
    (40, 1.0),
    (40, 0.9),
    (40, 0.5),
];

// Draw counts keep the whole file to a few seconds on lavapipe, where one draw over 128256
// logits takes ~15-40 ms.
#[test]
fn sampling_matches_reference_small_vocabs() {
    sample_cases(1, &[1.0], &ALL_KP, 3, 400);
    sample_cases(1000, &[0.7, 1.0, 1.5], &ALL_KP, 40, 401);
    sample_cases(4097, &[0.7, 1.5], &ALL_KP, 25, 402);
}

#[test]
fn sampling_matches_reference_llama_vocabs() {
    let kp = [(0, 1.0), (0, 0.5), (5, 1.0), (40, 0.9)];
    sample_cases(32000, &[0.7, 1.0], &kp, 10, 500);
    sample_cases(128256, &[1.0], &kp, 8, 501);
}

/// Flat logits (no preferred tokens) make the top-p and sampling boundaries fall among
/// hundreds of tokens of similar mass: the hard case for the f32 mass sums.
#[test]
fn sampling_matches_reference_flat_logits() {
    let gpu = test_gpu();
    let v = 1000;
    let mut rng = Rng::new(600);
    let mut rand_rng = SampleRng::new(600);
    let x = rng.normal_vec(v, 1.0);
    let tx = gpu.upload_f32("logits", &x, &[v]).unwrap();
    for (top_k, top_p) in [(0, 1.0), (0, 0.9), (300, 0.5)] {
        let s = Sampling {
            temperature: 1.0,
            top_k,
            top_p,
        };
        let rands: Vec<u32> = (0..50).map(|_| rand_rng.next_rand()).collect();
        let got = draw(gpu, &tx, &s, 1, &rands);
        check_draws(&format!("flat vocab={v} {s:?}"), &x, &s, &rands, &got);
    }
}

/// The histogram of many draws matches the kept, renormalised probabilities. The rands are
/// stratified (u = (j + 1/2) / n), so each token's count is n times its probability within
/// one draw, a far tighter check than random draws allow. SampleRng's own statistics are
/// those of SplitMix64.
#[test]
fn sampled_histogram_matches_probabilities() {
    let gpu = test_gpu();
    let v = 12;
    let mut rng = Rng::new(700);
    let x = rng.normal_vec(v, 1.0);
    let tx = gpu.upload_f32("logits", &x, &[v]).unwrap();
    let n = 1000u32;
    let rands: Vec<u32> = (0..n)
        .map(|j| (((2 * j as u64 + 1) << 32) / (2 * n as u64)) as u32)
        .collect();
    for s in [
        Sampling {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        },
        Sampling {
            temperature: 0.8,
            top_k: 5,
            top_p: 0.9,
        },
    ] {
        let got = draw(gpu, &tx, &s, 1, &rands);
        let mut count = vec![0usize; v];
        for &t in &got {
            count[t as usize] += 1;
        }
        let mut prob = vec![0.0f64; v];
        for (t, p) in reference::kept(&x, &s) {
            prob[t as usize] = p;
        }
        for t in 0..v {
            let freq = count[t] as f64 / n as f64;
            let tol = 1.0 / n as f64;
            assert!(
                (freq - prob[t]).abs() <= tol,
                "{s:?} token {t}: frequency {freq:.4} vs probability {:.4} (tol {tol:.4}), counts {count:?}",
                prob[t]
            );
        }
    }
}

#[test]
fn bad_operands_are_shape_errors() {
    let gpu = test_gpu();
    let logits = gpu.zeros_f32("logits", &[2, 100]).unwrap();
    let ids = gpu.upload_u32("ids", &[0; 200], &[2, 100]).unwrap();
    let tokens = gpu.upload_u32("tokens", &[0; 4], &[4]).unwrap();
    let f32_tokens = gpu.zeros_f32("f32 tokens", &[4]).unwrap();
    let step = gpu
        .upload_bytes(
            "step",
            bytemuck::bytes_of(&<Step as bytemuck::Zeroable>::zeroed()),
        )
        .unwrap();
    let short_step = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("short step"),
        size: 8,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    let ok = Sampling::greedy();
    let nan = Sampling {
        temperature: f32::NAN,
        ..ok
    };
    let is_shape = |r: Result<_, EngineError>, what: &str| match r {
        Err(EngineError::Shape { op, .. }) => assert_eq!(op, "sample", "{what}"),
        Err(e) => panic!("{what}: wrong error {e}"),
        Ok(_) => panic!("{what}: bad operands accepted"),
    };
    is_shape(sample(gpu, &ids, &step, &tokens, 0, &ok), "u32 logits");
    is_shape(
        sample(gpu, &logits, &step, &f32_tokens, 0, &ok),
        "f32 tokens",
    );
    is_shape(
        sample(gpu, &logits, &step, &tokens, 4, &ok),
        "index past tokens",
    );
    is_shape(
        sample(gpu, &logits, &short_step, &tokens, 0, &ok),
        "short step",
    );
    is_shape(
        sample(gpu, &logits, &step, &tokens, 0, &nan),
        "NaN temperature",
    );
    assert!(sample(gpu, &logits, &step, &tokens, 3, &ok).is_ok());
}

/// Timing probe (not a check): `cargo test --test ops_sample timing -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing() {
    let gpu = test_gpu();
    for v in [12usize, 4097, 128256] {
        let mut rng = Rng::new(900);
        let x = peaked_logits(&mut rng, v);
        let tx = gpu.upload_f32("logits", &x, &[v]).unwrap();
        for (t, k, p) in [(0.0, 0, 1.0), (1.0, 0, 1.0), (1.0, 40, 0.9), (1.0, 0, 0.9)] {
            let s = Sampling {
                temperature: t,
                top_k: k,
                top_p: p,
            };
            draw(gpu, &tx, &s, 1, &[1]);
            let n = 20;
            let t0 = std::time::Instant::now();
            draw(
                gpu,
                &tx,
                &s,
                1,
                &(0..n).map(|i| i * 77777).collect::<Vec<_>>(),
            );
            eprintln!(
                "vocab={v} {s:?}: {:.2} ms per draw",
                t0.elapsed().as_secs_f64() * 1e3 / n as f64
            );
        }
    }
}
