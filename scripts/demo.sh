#!/usr/bin/env bash
# End-to-end demo: installs what is missing, builds strata, then imports,
# converts, validates and summarizes the sample workloads in traces/,
# simulates them with ASTRA-sim's config files, and generates what-if
# workloads with the shipped LayerDAG model, simulates them and compares the
# generated trace's iteration time with the real one's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build --locked --release --quiet
strata() { target/release/strata "$@"; }
OUT=target/demo
rm -rf "$OUT"; mkdir -p "$OUT"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Import an ASTRA-sim 1.0 text workload (ResNet-50, data parallel) as 8 per-rank Chakra ETs"
strata et convert traces/text/Resnet50_DataParallel.txt "$OUT/resnet50" --npus 8

step "Import a PyTorch host execution trace"
strata et convert traces/pytorch/host_2ranks_rank0.json "$OUT/pytorch_rank0.et"

step "Validate everything: the sample workloads and what was just imported"
strata et validate traces/allreduce_8npus/allreduce traces/custom_allreduce_8npus/custom_allreduce \
  "$OUT/resnet50" "$OUT/pytorch_rank0.et"

step "Summarize rank 0 of each workload"
strata et stats "$OUT/resnet50.0.et" traces/custom_allreduce_8npus/custom_allreduce.0.et "$OUT/pytorch_rank0.et"

step "Round trip: binary -> readable JSON -> binary gives identical bytes"
strata et convert traces/custom_allreduce_8npus/custom_allreduce.0.et "$OUT/custom_allreduce.0.json"
strata et convert "$OUT/custom_allreduce.0.json" "$OUT/custom_allreduce.0.et"
cmp traces/custom_allreduce_8npus/custom_allreduce.0.et "$OUT/custom_allreduce.0.et" && echo "identical bytes"
head -c 600 "$OUT/custom_allreduce.0.json"; echo " ..."

SIM=(--workload traces/allreduce_8npus/allreduce --network topologies/Ring_8npus.yml
     --system configs/system/ring_lifo.json)

step "Simulate the 8-NPU all-reduce on a ring (ASTRA-sim's own network and system files)"
strata sim "${SIM[@]}"

step "The same run with ASTRA-sim's flags and output lines, writing a JSON report and a Perfetto timeline"
strata sim --workload-configuration=traces/allreduce_8npus/allreduce \
  --network-configuration=topologies/Ring_8npus.yml --system-configuration=configs/system/ring_lifo.json \
  --astra-log --report "$OUT/allreduce_report.json" --trace "$OUT/allreduce_trace.json"
head -c 300 "$OUT/allreduce_report.json"; echo " ..."
echo "To see the timeline, open https://ui.perfetto.dev in a browser, choose \"Open trace file\" and pick"
echo "$OUT/allreduce_trace.json (Perfetto reads it locally; chrome://tracing works too)."

REF=(--network topologies/Switch_4npus_ref.yml --system configs/reference/system.json
     --memory configs/reference/memory.json)

step "A real LLM training trace: STG llama, 4 layers, dp1 tp2 pp2 (4 ranks), on the corpus's reference system"
strata sim --workload traces/stg_llama_w000/workload --comm-group traces/stg_llama_w000/workload.json "${REF[@]}" \
  --report "$OUT/real_report.json" | tee "$OUT/real_sim.txt"

step "Generate the same configuration with the shipped LayerDAG model (models/default)"
# No --set: the generator's defaults are this trace's flags (traces/stg_llama_w000/config.json).
strata synth generate --ranks 4 --out "$OUT/generated/w000" --seed 0 --threads 1
strata et validate "$OUT/generated/w000"

step "Simulate the generated workload on the same system"
strata sim --workload "$OUT/generated/w000" --comm-group "$OUT/generated/w000.json" "${REF[@]}" \
  --report "$OUT/generated_report.json" | tee "$OUT/generated_sim.txt"

step "Compare: iteration time of the real and the generated trace"
real=$(grep '^makespan' "$OUT/real_sim.txt"); gen=$(grep '^makespan' "$OUT/generated_sim.txt")
echo "real:      $real"
echo "generated: $gen"

step "What if: twice the layers and data parallelism 2 (8 ranks), same system"
strata synth generate --set num_stacks=8 --set dp=2 --set micro_batch=2 --set batch=4 --ranks 8 --out "$OUT/generated/whatif" --seed 0 --threads 1
sed 's/\[ 4 \]/[ 8 ]/' topologies/Switch_4npus_ref.yml > "$OUT/Switch_8npus_ref.yml"
strata sim --workload "$OUT/generated/whatif" --comm-group "$OUT/generated/whatif.json" \
  --network "$OUT/Switch_8npus_ref.yml" --system configs/reference/system.json --memory configs/reference/memory.json \
  | grep '^makespan'

step "Done: outputs are in $OUT"
