#!/usr/bin/env bash
# Decode with int8 activations (fast) against f32 activations (exact) on the H100: TinyLlama
# and Llama-2-7B Q4_K_M (synthesised; the 7B in the background), `bench --tg 128` on both
# paths, `profile` of the fast decode, the fast-path golden models and `ops_matvec`.
# Binaries gzipped in .dev/lead/ (wgllama, ops_matvec); Vulkan loader debs in .gl/.
set -u
for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig
D=.dev/lead
for b in wgllama ops_matvec; do gunzip -kf $D/$b.gz; chmod +x $D/$b; done
B=$D/wgllama
O=/tmp/bo; mkdir -p $O; M=/tmp/m; mkdir -p $M
timeout 90 $B synth --threads 16 --preset tinyllama-1.1b --dtype q4_k_m -o $M/tl.gguf > $O/synth-tl.txt 2>&1
tail -1 $O/synth-tl.txt
(timeout 300 $B synth --threads 12 --preset llama-2-7b --dtype q4_k_m -o $M/7b.gguf > $O/synth-7b.txt 2>&1) &
for p in fast exact; do
  timeout 60 $B bench -m $M/tl.gguf --pp 0 --tg 128 -r 5 --precision $p > $O/bench-tl-$p.txt 2>&1
  grep "^|" $O/bench-tl-$p.txt | tail -1
done
for p in fast exact; do
  timeout 60 $B profile -m $M/tl.gguf --pp 16 --tg 64 --precision $p > $O/profile-tl-$p.txt 2>&1
  grep -A18 "== decode" $O/profile-tl-$p.txt
done
for g in golden/models/*/*q4_k_m.golden.safetensors golden/models/*/*q8_0.golden.safetensors; do
  m=${g%.golden.safetensors}.gguf
  echo "$m"; timeout 60 $B golden model -m $m --golden $g --precision fast 2>&1 | grep -E "prompt|rror"
done > $O/golden-fast.txt
grep -c PASS $O/golden-fast.txt; grep -E "FAIL|rror" $O/golden-fast.txt | head
timeout 90 $D/ops_matvec --test-threads 4 > $O/ops_matvec.txt 2>&1; grep -E "test result|FAILED|panicked" $O/ops_matvec.txt | head
wait
for p in fast exact; do
  timeout 90 $B bench -m $M/7b.gguf --pp 0 --tg 128 -r 5 --precision $p > $O/bench-7b-$p.txt 2>&1
  grep "^|" $O/bench-7b-$p.txt | tail -1
done
timeout 90 $B profile -m $M/7b.gguf --pp 16 --tg 64 --precision fast > $O/profile-7b-fast.txt 2>&1
grep -A16 "== decode" $O/profile-7b-fast.txt
cd /tmp && tar czf $OUT/bo.tgz bo
