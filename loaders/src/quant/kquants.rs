//! Quantisers for the k-quants (Q4_K, Q5_K, Q6_K), following ggml's reference algorithms
//! (`quantize_row_q{4,5,6}_K_ref`): each sub-block gets the scale (and, for Q4_K/Q5_K,
//! the minimum) that minimises a weighted squared error over a small search of candidate
//! scales; the super-block then stores those per-sub-block scales as 6- or 8-bit integers
//! relative to one f16 scale. Written from the algorithm's description, not ggml's code.
//!
//! Rounding is "to nearest, ties to even" throughout, as ggml's `nearest_int` does, so
//! our bytes match llama.cpp's quantiser on most inputs (exact equality is not a goal:
//! the format is; the tests bound the reconstruction error).

use half::f16;

use super::blocks::*;

/// ggml treats sub-blocks whose largest magnitude is below this as all zero.
const GROUP_MAX_EPS: f32 = 1e-15;

fn nearest(x: f32) -> i32 {
    x.round_ties_even() as i32
}

/// Finds `scale` and `min` (min <= 0) with `x[i] ~= scale * q[i] + min`, q in 0..=nmax,
/// minimising the error weighted by `w`. Starts from the plain min/max fit, then tries
/// `nstep + 1` stretched grids (`nmax + rmin + rdelta * k` steps over the range) and for
/// each solves the weighted least-squares problem for (scale, min) given the rounded q.
/// Returns (scale, -min) and fills `q`.
#[allow(clippy::too_many_arguments)]
fn fit_scale_min(
    x: &[f32],
    w: &[f32],
    nmax: i32,
    rmin: f32,
    rdelta: f32,
    nstep: i32,
    q: &mut [u8],
) -> (f32, f32) {
    let n = x.len();
    let (mut min, mut max) = (x[0], x[0]);
    let (mut sum_w, mut sum_x) = (0f32, 0f32);
    for i in 0..n {
        min = min.min(x[i]);
        max = max.max(x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    // The offset can only shift values down (x = scale*q - m with m >= 0).
    min = min.min(0.0);
    if max == min {
        q.fill(0);
        return (0.0, -min);
    }
    let range = max - min;
    let mut iscale = nmax as f32 / range;
    let mut scale = 1.0 / iscale;
    let mut best_error = 0f32;
    for i in 0..n {
        let l = nearest(iscale * (x[i] - min)).clamp(0, nmax);
        q[i] = l as u8;
        let diff = scale * l as f32 + min - x[i];
        best_error += w[i] * diff * diff;
    }
    let mut trial = [0u8; 32];
    let trial = &mut trial[..n];
    for step in 0..=nstep {
        iscale = (rmin + rdelta * step as f32 + nmax as f32) / range;
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0f32, 0f32, 0f32);
        for i in 0..n {
            let l = nearest(iscale * (x[i] - min)).clamp(0, nmax);
            trial[i] = l as u8;
            let l = l as f32;
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        // Normal equations of min over (scale, offset) of sum w (scale*l + offset - x)^2.
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det <= 0.0 {
            continue;
        }
        let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if this_min > 0.0 {
            // A positive offset is not representable: refit the scale alone.
            this_min = 0.0;
            this_scale = sum_xl / sum_l2;
        }
        let mut error = 0f32;
        for i in 0..n {
            let diff = this_scale * trial[i] as f32 + this_min - x[i];
            error += w[i] * diff * diff;
        }
        if error < best_error {
            q.copy_from_slice(trial);
            best_error = error;
            scale = this_scale;
            min = this_min;
        }
    }
    (scale, -min)
}

/// Symmetric fit for Q6_K's 16-value sub-blocks: `x[i] ~= scale * (q[i] - nmax)`, q in
/// 0..2*nmax. The largest-magnitude value maps to -nmax (the side with one more code);
/// then 18 nearby grids are tried and the one with the best weighted least-squares fit
/// (weights x^2, which favours the large values) wins. Returns the scale (may be negative).
fn fit_symmetric(x: &[f32], nmax: i32, q: &mut [u8]) -> f32 {
    let mut max = 0f32;
    let mut amax = 0f32;
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        q.fill(0);
        return 0.0;
    }
    let fit = |iscale: f32| {
        let (mut sum_lx, mut sum_l2) = (0f32, 0f32);
        for &v in x {
            let l = nearest(iscale * v).clamp(-nmax, nmax - 1) as f32;
            let w = v * v;
            sum_lx += w * v * l;
            sum_l2 += w * l * l;
        }
        (sum_lx, sum_l2)
    };
    let fill = |iscale: f32, q: &mut [u8]| {
        for (q, &v) in q.iter_mut().zip(x) {
            *q = (nearest(iscale * v).clamp(-nmax, nmax - 1) + nmax) as u8;
        }
    };
    let iscale = -(nmax as f32) / max;
    fill(iscale, q);
    let (sum_lx, sum_l2) = fit(iscale);
    let mut scale = if sum_l2 > 0.0 { sum_lx / sum_l2 } else { 0.0 };
    let mut best = scale * sum_lx;
    for k in (-9..=9).filter(|&k| k != 0) {
        let iscale = -(nmax as f32 + 0.1 * k as f32) / max;
        let (sum_lx, sum_l2) = fit(iscale);
        // Maximising sum_lx^2 / sum_l2 is minimising the error of the least-squares scale.
        if sum_l2 > 0.0 && sum_lx * sum_lx > best * sum_l2 {
            fill(iscale, q);
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    scale
}

/// Quantises the 8 sub-blocks of 32 of a Q4_K/Q5_K super-block: returns (d, dmin, the
/// 12 packed scale bytes) and the codes (0..=nmax) in `codes`.
fn k_scales_and_codes(
    x: &[f32; QK_K],
    nmax: i32,
    rmin: f32,
    nstep: i32,
    codes: &mut [u8; QK_K],
) -> ([u8; 2], [u8; 2], [u8; K_SCALE_SIZE]) {
    let mut scales = [0f32; 8];
    let mut mins = [0f32; 8];
    let mut weights = [0f32; 32];
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        // ggml's weighting: values far from zero matter more, with a floor at the RMS so
        // small values still count.
        let rms = (xs.iter().map(|v| v * v).sum::<f32>() / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = rms + v.abs();
        }
        let (scale, min) = fit_scale_min(
            xs,
            &weights,
            nmax,
            rmin,
            0.1,
            nstep,
            &mut codes[32 * j..32 * j + 32],
        );
        scales[j] = scale;
        mins[j] = min;
    }
    let max_scale = scales.iter().fold(0f32, |m, &s| m.max(s));
    let max_min = mins.iter().fold(0f32, |m, &s| m.max(s));
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut packed = [0u8; K_SCALE_SIZE];
    for j in 0..8 {
        let ls = nearest(inv_scale * scales[j]).clamp(0, 63) as u8;
        let lm = nearest(inv_min * mins[j]).clamp(0, 63) as u8;
        // The packing [`k_scale_min`] reads back.
        if j < 4 {
            packed[j] = ls;
            packed[j + 4] = lm;
        } else {
            packed[j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
            packed[j - 4] |= (ls >> 4) << 6;
            packed[j] |= (lm >> 4) << 6;
        }
    }
    let d = f16::from_f32(max_scale / 63.0);
    let dmin = f16::from_f32(max_min / 63.0);
    // Re-derive the codes from the scales as stored (6-bit and f16-rounded), so the
    // rounding of the scales does not add to the error.
    for j in 0..8 {
        let (sc, m) = k_scale_min(j, &packed);
        let step = d.to_f32() * sc as f32;
        if step == 0.0 {
            continue;
        }
        let offset = dmin.to_f32() * m as f32;
        for i in 32 * j..32 * j + 32 {
            codes[i] = nearest((x[i] + offset) / step).clamp(0, nmax) as u8;
        }
    }
    (d.to_le_bytes(), dmin.to_le_bytes(), packed)
}

pub(super) fn q4k_block(x: &[f32; QK_K]) -> BlockQ4K {
    let mut codes = [0u8; QK_K];
    let (d, dmin, scales) = k_scales_and_codes(x, 15, -1.0, 20, &mut codes);
    let mut qs = [0u8; QK_K / 2];
    // Each 64-value group: the first 32 codes in the low nibbles, the next 32 in the high.
    for group in 0..4 {
        for l in 0..32 {
            qs[32 * group + l] = codes[64 * group + l] | (codes[64 * group + 32 + l] << 4);
        }
    }
    BlockQ4K {
        d,
        dmin,
        scales,
        qs,
    }
}

pub(super) fn q5k_block(x: &[f32; QK_K]) -> BlockQ5K {
    let mut codes = [0u8; QK_K];
    let (d, dmin, scales) = k_scales_and_codes(x, 31, -0.5, 15, &mut codes);
    let mut qs = [0u8; QK_K / 2];
    let mut qh = [0u8; QK_K / 8];
    for group in 0..4 {
        for l in 0..32 {
            let (lo, hi) = (codes[64 * group + l], codes[64 * group + 32 + l]);
            qs[32 * group + l] = (lo & 0x0f) | ((hi & 0x0f) << 4);
            qh[l] |= ((lo >> 4) << (2 * group)) | ((hi >> 4) << (2 * group + 1));
        }
    }
    BlockQ5K {
        d,
        dmin,
        scales,
        qh,
        qs,
    }
}

pub(super) fn q6k_block(x: &[f32; QK_K]) -> BlockQ6K {
    let mut codes = [0u8; QK_K];
    let mut sub_scales = [0f32; 16];
    let mut max_scale = 0f32;
    for (j, s) in sub_scales.iter_mut().enumerate() {
        *s = fit_symmetric(&x[16 * j..16 * j + 16], 32, &mut codes[16 * j..16 * j + 16]);
        if s.abs() > max_scale.abs() {
            max_scale = *s;
        }
    }
    let zero = BlockQ6K {
        ql: [0; QK_K / 2],
        qh: [0; QK_K / 4],
        scales: [0; QK_K / 16],
        d: [0; 2],
    };
    if max_scale.abs() < GROUP_MAX_EPS {
        return zero;
    }
    // The largest scale maps to -128: int8 scales, the same sign trick as the codes.
    let iscale = -128.0 / max_scale;
    let d = f16::from_f32(1.0 / iscale);
    let mut scales = [0i8; 16];
    for (s, &v) in scales.iter_mut().zip(&sub_scales) {
        *s = nearest(iscale * v).min(127) as i8;
    }
    for (j, &sc) in scales.iter().enumerate() {
        let step = d.to_f32() * sc as f32;
        if step == 0.0 {
            continue;
        }
        for i in 16 * j..16 * j + 16 {
            codes[i] = (nearest(x[i] / step).clamp(-32, 31) + 32) as u8;
        }
    }
    let mut b = zero;
    b.d = d.to_le_bytes();
    b.scales = scales;
    // Layout read back by the dequantiser: per half of 128, byte l of ql/qh serves values
    // l, l+32, l+64, l+96.
    for half in 0..2 {
        let c = &codes[128 * half..128 * half + 128];
        for l in 0..32 {
            b.ql[64 * half + l] = (c[l] & 0x0f) | ((c[l + 64] & 0x0f) << 4);
            b.ql[64 * half + l + 32] = (c[l + 32] & 0x0f) | ((c[l + 96] & 0x0f) << 4);
            b.qh[32 * half + l] = (c[l] >> 4)
                | ((c[l + 32] >> 4) << 2)
                | ((c[l + 64] >> 4) << 4)
                | ((c[l + 96] >> 4) << 6);
        }
    }
    b
}
