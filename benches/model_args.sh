# Sourced by the H100 scripts: `wgllama synth` arguments for each benchmark model name.
args_of() {
    case $1 in
    tinyllama-q4_k_m) echo "--preset tinyllama-1.1b --dtype q4_k_m" ;;
    tinyllama-f16) echo "--preset tinyllama-1.1b --dtype f16" ;;
    llama2-7b-q4_k_m) echo "--preset llama-2-7b --dtype q4_k_m" ;;
    llama2-7b-f16) echo "--preset llama-2-7b --dtype f16" ;;
    esac
}
