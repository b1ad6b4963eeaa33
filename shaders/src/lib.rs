//! The WGSL kernels of wgllama, one file per kernel family.
//!
//! WGSL has no `#include`: a family that needs shared helpers lists the helper files before
//! its own, and `Shader::source` joins them. Variants inside a family are WGSL `override`
//! constants chosen at pipeline creation, never text substitution.

/// A kernel family: its name and the WGSL files that make its module, in order.
#[derive(Clone, Copy, Debug)]
pub struct Shader {
    pub name: &'static str,
    pub parts: &'static [&'static str],
}

impl Shader {
    pub fn source(&self) -> String {
        self.parts.concat()
    }
}

/// Workgroup-memory reductions shared by kernels that reduce across a workgroup.
pub const REDUCE_WGSL: &str = include_str!("../reduce.wgsl");
/// Weight decoding (`w16`: 16 values of a row) for every weight type, shared by the kernels
/// that read weights. Layouts: engine/src/weights.rs.
pub const QUANT_WGSL: &str = include_str!("../quant.wgsl");
/// f32 to f16 words, saturating (`f16_pair`, `f16_quad`), for kernels with f16 outputs.
pub const F16_PACK_WGSL: &str = include_str!("../f16_pack.wgsl");
/// SwiGLU's silu(g), for the kernels that apply it.
pub const SILU_WGSL: &str = include_str!("../silu.wgsl");

pub const SMOKE: Shader = Shader {
    name: "smoke",
    parts: &[include_str!("../smoke.wgsl")],
};
pub const RMSNORM: Shader = Shader {
    name: "rmsnorm",
    parts: &[
        REDUCE_WGSL,
        F16_PACK_WGSL,
        include_str!("../rmsnorm.wgsl"),
        include_str!("../rmsnorm_wg.wgsl"),
    ],
};
/// Subgroup sums shared by the `_sg` variants of the one-workgroup reductions.
pub const REDUCE_SG_WGSL: &str = include_str!("../reduce_sg.wgsl");
/// RMSNorm with a subgroup workgroup sum (needs SUBGROUP).
pub const RMSNORM_SG: Shader = Shader {
    name: "rmsnorm_sg",
    parts: &[
        REDUCE_SG_WGSL,
        F16_PACK_WGSL,
        include_str!("../rmsnorm.wgsl"),
        include_str!("../rmsnorm_sg.wgsl"),
    ],
};
/// The per-step values (`struct Step`) that position-dependent kernels bind.
pub const STEP_WGSL: &str = include_str!("../step.wgsl");

/// sin/cos with explicit range reduction, shared by the RoPE kernels.
pub const SINCOS_WGSL: &str = include_str!("../sincos.wgsl");
/// KV-cache quad reads (f32 or f16 cache) shared by the attention kernels.
pub const KV_LOAD_WGSL: &str = include_str!("../kv_load.wgsl");

pub const ROPE: Shader = Shader {
    name: "rope",
    parts: &[STEP_WGSL, SINCOS_WGSL, include_str!("../rope.wgsl")],
};
/// RoPE on q and k plus the KV-cache write, one dispatch.
pub const ROPE_KV: Shader = Shader {
    name: "rope_kv",
    parts: &[STEP_WGSL, SINCOS_WGSL, include_str!("../rope_kv.wgsl")],
};

pub const KVCACHE: Shader = Shader {
    name: "kvcache",
    parts: &[STEP_WGSL, include_str!("../kvcache.wgsl")],
};

pub const ATTENTION: Shader = Shader {
    name: "attention",
    parts: &[STEP_WGSL, include_str!("../attention.wgsl")],
};
pub const ATTENTION_MERGE: Shader = Shader {
    name: "attention_merge",
    parts: &[include_str!("../attention_merge.wgsl")],
};
/// The body of decode attention, shared by its subgroup and workgroup-memory variants.
pub const ATTENTION_DECODE_WGSL: &str = include_str!("../attention_decode.wgsl");
/// int8 block helpers shared by the quantisers and the decode attention merge.
pub const INT8_BLOCK_WGSL: &str = include_str!("../int8_block.wgsl");
/// Decode attention's partials binding: plain (merge dispatch), or @coherent (FOLD).
pub const ATTENTION_DECODE_PART_WGSL: &str = include_str!("../attention_decode_part.wgsl");
pub const ATTENTION_DECODE_PART_COHERENT_WGSL: &str =
    include_str!("../attention_decode_part_coherent.wgsl");
const ATTENTION_DECODE_SG_WGSL: &str = include_str!("../attention_decode_sg.wgsl");
const ATTENTION_DECODE_WG_WGSL: &str = include_str!("../attention_decode_wg.wgsl");
/// Decode attention (flash-decoding, one dispatch) with subgroup shuffles (needs SUBGROUP).
pub const ATTENTION_DECODE_SG: Shader = Shader {
    name: "attention_decode_sg",
    parts: &[
        STEP_WGSL,
        SINCOS_WGSL,
        ATTENTION_DECODE_SG_WGSL,
        KV_LOAD_WGSL,
        INT8_BLOCK_WGSL,
        ATTENTION_DECODE_PART_WGSL,
        ATTENTION_DECODE_WGSL,
    ],
};
/// Decode attention with workgroup-memory reductions, for adapters without subgroups.
pub const ATTENTION_DECODE_WG: Shader = Shader {
    name: "attention_decode_wg",
    parts: &[
        STEP_WGSL,
        SINCOS_WGSL,
        ATTENTION_DECODE_WG_WGSL,
        KV_LOAD_WGSL,
        INT8_BLOCK_WGSL,
        ATTENTION_DECODE_PART_WGSL,
        ATTENTION_DECODE_WGSL,
    ],
};
/// `ATTENTION_DECODE_SG` with @coherent partials, for the merge folded in (FOLD; needs the
/// device feature MEMORY_DECORATION_COHERENT).
pub const ATTENTION_DECODE_SG_FOLD: Shader = Shader {
    name: "attention_decode_sg_fold",
    parts: &[
        STEP_WGSL,
        SINCOS_WGSL,
        ATTENTION_DECODE_SG_WGSL,
        KV_LOAD_WGSL,
        INT8_BLOCK_WGSL,
        ATTENTION_DECODE_PART_COHERENT_WGSL,
        ATTENTION_DECODE_WGSL,
    ],
};
/// `ATTENTION_DECODE_WG` with @coherent partials (FOLD).
pub const ATTENTION_DECODE_WG_FOLD: Shader = Shader {
    name: "attention_decode_wg_fold",
    parts: &[
        STEP_WGSL,
        SINCOS_WGSL,
        ATTENTION_DECODE_WG_WGSL,
        KV_LOAD_WGSL,
        INT8_BLOCK_WGSL,
        ATTENTION_DECODE_PART_COHERENT_WGSL,
        ATTENTION_DECODE_WGSL,
    ],
};
/// Prompt attention with register tiles.
pub const ATTENTION_PREFILL: Shader = Shader {
    name: "attention_prefill",
    parts: &[
        STEP_WGSL,
        KV_LOAD_WGSL,
        include_str!("../attention_prefill.wgsl"),
    ],
};

/// Prompt attention on cooperative matrices (tensor cores; needs the device's
/// EXPERIMENTAL_COOPERATIVE_MATRIX, SHADER_F16 and SUBGROUP). Its `enable`s come first.
pub const ATTENTION_COOP: Shader = Shader {
    name: "attention_coop",
    parts: &[
        include_str!("../attention_coop.wgsl"),
        STEP_WGSL,
        KV_LOAD_WGSL,
        F16_PACK_WGSL,
    ],
};

pub const ELEMENTWISE: Shader = Shader {
    name: "elementwise",
    parts: &[
        F16_PACK_WGSL,
        SILU_WGSL,
        include_str!("../elementwise.wgsl"),
    ],
};
pub const SOFTMAX: Shader = Shader {
    name: "softmax",
    parts: &[REDUCE_WGSL, include_str!("../softmax.wgsl")],
};
pub const SAMPLE: Shader = Shader {
    name: "sample",
    parts: &[include_str!("../sample.wgsl")],
};
/// sample.wgsl plus greedy argmax with subgroup operations (needs SUBGROUP).
pub const SAMPLE_SG: Shader = Shader {
    name: "sample_sg",
    parts: &[
        include_str!("../sample.wgsl"),
        include_str!("../sample_sg.wgsl"),
    ],
};

pub const MATMUL: Shader = Shader {
    name: "matmul",
    parts: &[QUANT_WGSL, include_str!("../matmul.wgsl")],
};
/// The decode mat-vec with subgroup reductions (needs the device's SUBGROUP feature).
pub const MATVEC_SUBGROUP: Shader = Shader {
    name: "matvec_subgroup",
    parts: &[QUANT_WGSL, include_str!("../matvec_subgroup.wgsl")],
};
/// The prefill mat-mul on cooperative matrices (tensor cores; needs the device's
/// EXPERIMENTAL_COOPERATIVE_MATRIX, SHADER_F16 and SUBGROUP). Its own file comes first: it
/// opens with the `enable` directives, which must precede every declaration of the module.
pub const MATMUL_COOP: Shader = Shader {
    name: "matmul_coop",
    parts: &[
        include_str!("../matmul_coop.wgsl"),
        QUANT_WGSL,
        SILU_WGSL,
        F16_PACK_WGSL,
    ],
};
/// The decode mat-vec family (one token: plain, up to three weights sharing x, SwiGLU pair)
/// with subgroup reductions (needs the device's SUBGROUP feature).
pub const MATVEC: Shader = Shader {
    name: "matvec",
    parts: &[
        QUANT_WGSL,
        SILU_WGSL,
        INT8_BLOCK_WGSL,
        include_str!("../matvec.wgsl"),
        include_str!("../matvec_reduce_sg.wgsl"),
    ],
};
/// The same kernels reducing through workgroup memory, for devices without subgroups.
pub const MATVEC_WG: Shader = Shader {
    name: "matvec_wg",
    parts: &[
        QUANT_WGSL,
        SILU_WGSL,
        INT8_BLOCK_WGSL,
        include_str!("../matvec.wgsl"),
        include_str!("../matvec_reduce_wg.wgsl"),
    ],
};
/// Activations to int8 blocks for the int8 mat-vec path (matvec.wgsl with XQ), with subgroup
/// shuffles (needs SUBGROUP, subgroups of at least 8 lanes, WG a multiple of their size).
pub const QUANTIZE_X8_SG: Shader = Shader {
    name: "quantize_x8_sg",
    parts: &[
        REDUCE_SG_WGSL,
        INT8_BLOCK_WGSL,
        include_str!("../quantize_x8.wgsl"),
        include_str!("../quantize_x8_sg.wgsl"),
    ],
};
/// The same kernels through workgroup memory, for every adapter.
pub const QUANTIZE_X8_WG: Shader = Shader {
    name: "quantize_x8_wg",
    parts: &[
        REDUCE_WGSL,
        INT8_BLOCK_WGSL,
        include_str!("../quantize_x8.wgsl"),
        include_str!("../quantize_x8_wg.wgsl"),
    ],
};
pub const DEQUANT: Shader = Shader {
    name: "dequant",
    parts: &[QUANT_WGSL, include_str!("../dequant.wgsl")],
};
pub const EMBEDDING: Shader = Shader {
    name: "embedding",
    parts: &[
        QUANT_WGSL,
        INT8_BLOCK_WGSL,
        include_str!("../embedding.wgsl"),
    ],
};

/// L2 prefetch of the next mat-vec's weights during a decode kernel that streams little.
pub const PREFETCH: Shader = Shader {
    name: "prefetch",
    parts: &[include_str!("../prefetch.wgsl")],
};

/// Every shader module, for validation.
pub const ALL: &[Shader] = &[
    SMOKE,
    RMSNORM,
    RMSNORM_SG,
    ROPE,
    ROPE_KV,
    KVCACHE,
    ATTENTION,
    ATTENTION_MERGE,
    ATTENTION_DECODE_SG,
    ATTENTION_DECODE_WG,
    ATTENTION_DECODE_SG_FOLD,
    ATTENTION_DECODE_WG_FOLD,
    ATTENTION_PREFILL,
    ATTENTION_COOP,
    ELEMENTWISE,
    SOFTMAX,
    SAMPLE,
    SAMPLE_SG,
    MATMUL,
    MATVEC_SUBGROUP,
    MATMUL_COOP,
    MATVEC,
    MATVEC_WG,
    QUANTIZE_X8_SG,
    QUANTIZE_X8_WG,
    DEQUANT,
    EMBEDDING,
    PREFETCH,
];

#[cfg(test)]
mod tests {
    use super::*;

    /// naga parses and validates every module with all capabilities a kernel may use.
    #[test]
    fn every_shader_validates_with_naga() {
        let mut failures = Vec::new();
        for shader in ALL {
            let src = shader.source();
            let module = match naga::front::wgsl::parse_str(&src) {
                Ok(m) => m,
                Err(e) => {
                    failures.push(format!(
                        "{}: parse: {}",
                        shader.name,
                        e.emit_to_string(&src)
                    ));
                    continue;
                }
            };
            let mut v = naga::valid::Validator::new(
                naga::valid::ValidationFlags::all(),
                naga::valid::Capabilities::all(),
            );
            if let Err(e) = v.validate(&module) {
                failures.push(format!(
                    "{}: validate: {}",
                    shader.name,
                    e.emit_to_string(&src)
                ));
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Parses and validates `shader` with every capability, applies `constants` and writes
    /// SPIR-V for `entry` (what wgpu does on Vulkan when it builds a pipeline).
    fn to_spirv(shader: &Shader, entry: &str, constants: &[(&str, f64)]) -> Result<usize, String> {
        let src = shader.source();
        let module = naga::front::wgsl::parse_str(&src).map_err(|e| e.emit_to_string(&src))?;
        let mut v = naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::all(),
        );
        let info = v.validate(&module).map_err(|e| e.emit_to_string(&src))?;
        let constants: naga::back::PipelineConstants =
            constants.iter().map(|&(k, v)| (k.to_string(), v)).collect();
        let stage = naga::ShaderStage::Compute;
        let (module, info) = naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((stage, entry)),
            &constants,
        )
        .map_err(|e| format!("overrides: {e}"))?;
        let options = naga::back::spv::Options {
            lang_version: (1, 3),
            ..Default::default()
        };
        let pipeline = naga::back::spv::PipelineOptions {
            shader_stage: stage,
            entry_point: entry.to_string(),
        };
        naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
            .map(|words| words.len())
            .map_err(|e| format!("spv: {e}"))
    }

    /// Every entry point of every module translates to SPIR-V with its default constants.
    #[test]
    fn every_entry_point_translates_to_spirv() {
        let mut failures = Vec::new();
        for shader in ALL {
            let src = shader.source();
            let module = naga::front::wgsl::parse_str(&src).unwrap();
            for ep in &module.entry_points {
                if let Err(e) = to_spirv(shader, &ep.name, &[]) {
                    failures.push(format!("{} {}: {e}", shader.name, ep.name));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The cooperative-matrix mat-mul with every weight type, the tile shapes the engine
    /// may pick and its prefetch depths and x types: its workgroup arrays are sized by override expressions and its coopStore
    /// operands are named values, both of which naga 30 needs (see the shader).
    #[test]
    fn matmul_coop_variants_translate_to_spirv() {
        let tiles: &[&[(&str, f64)]] = &[
            &[],
            &[("SG_T", 2.0), ("SG_N", 4.0), ("TM", 4.0), ("TN", 2.0)],
            &[
                ("SG_T", 1.0),
                ("SG_N", 4.0),
                ("TM", 4.0),
                ("TN", 4.0),
                ("BK", 16.0),
            ],
            &[
                ("SG_T", 4.0),
                ("SG_N", 2.0),
                ("TM", 1.0),
                ("TN", 1.0),
                ("BK", 64.0),
            ],
            &[("SG_T", 4.0), ("SG_N", 4.0), ("TM", 2.0), ("TN", 2.0)],
            &[
                ("SG_T", 2.0),
                ("SG_N", 4.0),
                ("TM", 4.0),
                ("TN", 2.0),
                ("BK", 64.0),
                ("NW", 2.0),
                ("GLU", 1.0),
            ],
            &[
                ("SG_T", 2.0),
                ("SG_N", 2.0),
                ("TM", 2.0),
                ("TN", 2.0),
                ("BK", 64.0),
                ("NW", 2.0),
                ("GLU", 1.0),
            ],
        ];
        let mut failures = Vec::new();
        for dt in [0.0, 1.0, 2.0, 6.0, 8.0, 12.0, 13.0, 14.0, 30.0] {
            for (i, tile) in tiles.iter().enumerate() {
                for (acc, depth, xh, nw, stages) in [
                    (0.0, 0.0, 0.0, 1.0, 2.0),
                    (1.0, 1.0, 1.0, 1.0, 2.0),
                    (0.0, 1.0, 0.0, 2.0, 2.0),
                    (1.0, 0.0, 1.0, 1.0, 1.0),
                    (0.0, 1.0, 1.0, 3.0, 2.0),
                    (0.0, 1.0, 1.0, 1.0, 1.0),
                    (1.0, 1.0, 0.0, 2.0, 1.0),
                ] {
                    for split in [0.0, 1.0] {
                        let mut c = vec![
                            ("DT", dt),
                            ("ACC", acc),
                            ("DEPTH", depth),
                            ("XH", xh),
                            ("NW", nw),
                            ("STAGES", stages),
                            ("SPLIT", split),
                        ];
                        c.extend_from_slice(tile);
                        if let Err(e) = to_spirv(&MATMUL_COOP, "matmul_coop", &c) {
                            failures.push(format!(
                                "DT {dt} tile {i} acc {acc} depth {depth} xh {xh} nw {nw} stages \
                                 {stages} split {split}: {e}"
                            ));
                        }
                    }
                }
            }
        }
        // dequant_f16 for every weight type and 1 to 3 weights.
        for dt in [0.0, 1.0, 2.0, 6.0, 8.0, 12.0, 13.0, 14.0, 30.0] {
            for nw in [1.0, 2.0, 3.0] {
                let c = [("DT", dt), ("NW", nw)];
                if let Err(e) = to_spirv(&MATMUL_COOP, "dequant_f16", &c) {
                    failures.push(format!("dequant_f16 DT {dt} nw {nw}: {e}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// attention_coop's variants (head dims, keys per tile, cache types) through naga's
    /// pipeline-constant pass and SPIR-V backend.
    #[test]
    fn attention_coop_variants_translate_to_spirv() {
        let mut failures = Vec::new();
        for (hd, bc) in [
            (64.0, 64.0),
            (64.0, 32.0),
            (128.0, 32.0),
            (80.0, 32.0),
            (16.0, 64.0),
        ] {
            for (kv, qreg, o16) in [(0.0, 1.0, 0.0), (1.0, 0.0, 1.0), (0.0, 1.0, 1.0)] {
                let c = [
                    ("HD", hd),
                    ("BC", bc),
                    ("KV_F16", kv),
                    ("QREG", qreg),
                    ("O16", o16),
                ];
                if let Err(e) = to_spirv(&ATTENTION_COOP, "main", &c) {
                    failures.push(format!("HD {hd} BC {bc} KV_F16 {kv} O16 {o16}: {e}"));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// Decode attention with the merge folded in (FOLD, @coherent partials), with and without
    /// the int8 output and fused RoPE: through the pipeline-constant pass and the SPIR-V
    /// backend (`every_entry_point_translates_to_spirv` covers the default constants, FOLD off).
    #[test]
    fn attention_decode_fold_translates_to_spirv() {
        let mut failures = Vec::new();
        for shader in [&ATTENTION_DECODE_SG_FOLD, &ATTENTION_DECODE_WG_FOLD] {
            for (qx, rope) in [(0.0, 0.0), (1.0, 1.0)] {
                let c = [("FOLD", 1.0), ("QX", qx), ("ROPE", rope), ("HD", 64.0)];
                if let Err(e) = to_spirv(shader, "main", &c) {
                    failures.push(format!("{} QX {qx} ROPE {rope}: {e}", shader.name));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn every_wgsl_file_is_registered() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let known: String = ALL.iter().map(|s| s.source()).collect();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "wgsl") {
                let text = std::fs::read_to_string(&path).unwrap();
                assert!(
                    known.contains(&text),
                    "{} is not part of any Shader in ALL",
                    path.display()
                );
            }
        }
    }
}
