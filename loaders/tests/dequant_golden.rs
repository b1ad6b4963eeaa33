//! Our CPU dequantisers against the `gguf` Python package's (golden/loaders/make_dequant_golden.py).

use std::path::PathBuf;

use safetensors::SafeTensors;
use wgllama_loaders::quant::dequantize;
use wgllama_loaders::DType;

#[test]
fn dequantisers_match_the_gguf_python_package_exactly() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../golden/loaders/dequant/dequant.safetensors");
    let bytes =
        std::fs::read(&path).expect("golden file (run golden/loaders/make_dequant_golden.py)");
    let golden = SafeTensors::deserialize(&bytes).expect("golden file parses");
    let types = [
        ("q8_0", DType::Q8_0),
        ("q4_0", DType::Q4_0),
        ("q5_0", DType::Q5_0),
        ("q4_K", DType::Q4K),
        ("q5_K", DType::Q5K),
        ("q6_K", DType::Q6K),
        ("f16", DType::F16),
        ("bf16", DType::BF16),
    ];
    for (name, dtype) in types {
        let blocks = golden.tensor(&format!("{name}.blocks")).unwrap();
        let values = golden.tensor(&format!("{name}.values")).unwrap();
        let expected: Vec<f32> = values
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        assert!(expected.len() >= 64, "{name}: golden too small");
        let got = dequantize(dtype, blocks.data(), expected.len()).unwrap();
        for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "{name}[{i}]: got {g}, gguf says {e}"
            );
        }
        // Misaligned input: the same bytes one byte into a buffer give the same values.
        let mut shifted = vec![0u8; blocks.data().len() + 1];
        shifted[1..].copy_from_slice(blocks.data());
        assert_eq!(
            dequantize(dtype, &shifted[1..], expected.len()).unwrap(),
            got,
            "{name} misaligned"
        );
    }
}
