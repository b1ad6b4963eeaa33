export OUT=$OUT/s22-control
for r in 1 2; do
  for d in s22h s22c; do
    echo "== $d round $r"
    D=.dev/$d MODELS="tinyllama-f16 tinyllama-q4_k_m" ROUNDS=1 R=3 PROFILE_ARGS="--pp 1 --tg 128" CONFIGS="-" bash benches/h100_env_sweep.sh 2>&1 | tail -2
  done
done
