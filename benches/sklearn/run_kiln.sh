#!/usr/bin/env bash
# Kiln's test MAE with the CLI's defaults on the CSVs benches/sklearn/regression.py wrote to DIR
# (the same 80/20 splits scikit-learn scored). KILN overrides the binary (default: a release build).
set -euo pipefail
dir=${1:-target/sklearn}
kiln=${KILN:-cargo run --quiet --release --}
printf '%-11s %6s %10s\n' set rows "kiln MAE"
for train in "$dir"/*_train.csv; do
  name=$(basename "$train" _train.csv)
  test="$dir/${name}_test.csv"
  model="$dir/$name.safetensors"
  $kiln train --data "$train" --target y --task regression --out "$model" --quiet
  mae=$($kiln evaluate --model "$model" --data "$test" --json | sed -E 's/.*"mae":([0-9.eE+-]+).*/\1/')
  rows=$(( $(wc -l < "$train") + $(wc -l < "$test") - 2 ))
  printf '%-11s %6d %10.4f\n' "$name" "$rows" "$mae"
done
