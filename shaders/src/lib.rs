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

pub const SMOKE: Shader = Shader {
    name: "smoke",
    parts: &[include_str!("../smoke.wgsl")],
};
pub const RMSNORM: Shader = Shader {
    name: "rmsnorm",
    parts: &[REDUCE_WGSL, include_str!("../rmsnorm.wgsl")],
};

/// The per-step values (`struct Step`) that position-dependent kernels bind.
pub const STEP_WGSL: &str = include_str!("../step.wgsl");

pub const ROPE: Shader = Shader {
    name: "rope",
    parts: &[STEP_WGSL, include_str!("../rope.wgsl")],
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

pub const ELEMENTWISE: Shader = Shader {
    name: "elementwise",
    parts: &[include_str!("../elementwise.wgsl")],
};
pub const SOFTMAX: Shader = Shader {
    name: "softmax",
    parts: &[REDUCE_WGSL, include_str!("../softmax.wgsl")],
};
pub const SAMPLE: Shader = Shader {
    name: "sample",
    parts: &[include_str!("../sample.wgsl")],
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
/// The decode mat-vec family (one token: plain, up to three weights sharing x, SwiGLU pair)
/// with subgroup reductions (needs the device's SUBGROUP feature).
pub const MATVEC: Shader = Shader {
    name: "matvec",
    parts: &[
        QUANT_WGSL,
        include_str!("../matvec.wgsl"),
        include_str!("../matvec_reduce_sg.wgsl"),
    ],
};
/// The same kernels reducing through workgroup memory, for devices without subgroups.
pub const MATVEC_WG: Shader = Shader {
    name: "matvec_wg",
    parts: &[
        QUANT_WGSL,
        include_str!("../matvec.wgsl"),
        include_str!("../matvec_reduce_wg.wgsl"),
    ],
};
/// Activations to int8 blocks for the int8 mat-vec path (matvec.wgsl with XQ).
pub const QUANTIZE_X8: Shader = Shader {
    name: "quantize_x8",
    parts: &[include_str!("../quantize_x8.wgsl")],
};
pub const DEQUANT: Shader = Shader {
    name: "dequant",
    parts: &[QUANT_WGSL, include_str!("../dequant.wgsl")],
};
pub const EMBEDDING: Shader = Shader {
    name: "embedding",
    parts: &[QUANT_WGSL, include_str!("../embedding.wgsl")],
};

/// Every shader module, for validation.
pub const ALL: &[Shader] = &[
    SMOKE,
    RMSNORM,
    ROPE,
    KVCACHE,
    ATTENTION,
    ATTENTION_MERGE,
    ELEMENTWISE,
    SOFTMAX,
    SAMPLE,
    MATMUL,
    MATVEC_SUBGROUP,
    MATVEC,
    MATVEC_WG,
    QUANTIZE_X8,
    DEQUANT,
    EMBEDDING,
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
