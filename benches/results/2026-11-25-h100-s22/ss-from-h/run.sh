export OUT=$OUT/s22-ssh
C="-;WGLLAMA_TICKET_CUT=1;WGLLAMA_TICKET_CUT=1 WGLLAMA_SS_H=0;WGLLAMA_TICKET_CUT=1 WGLLAMA_SS_H=1"
D=.dev/s22c MODELS="tinyllama-f16 llama2-7b-f16" ROUNDS=2 R=3 PROFILE_ARGS="--pp 1 --tg 128" CONFIGS="$C" bash benches/h100_env_sweep.sh 2>&1 | tail -16
B=.dev/s22c/wgllama
for e in "" "WGLLAMA_TICKET_CUT=1 WGLLAMA_SS_H=0" "WGLLAMA_TICKET_CUT=1 WGLLAMA_SS_H=1"; do
  echo "== golden $e"
  env $e timeout 60 $B golden model -m golden/models/tiny-gqa/hf-bf16-sharded --golden golden/models/tiny-gqa/hf-bf16-sharded.golden.safetensors --precision fast 2>&1 | tail -3
done
