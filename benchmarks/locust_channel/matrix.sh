#!/bin/sh
# The runs behind the table in README.md: ~30 runs of ~30 s each (each waits for the
# machine to be idle first). Results are appended to $OUT (default results.jsonl).
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-benchmarks/locust_channel/results.jsonl}
R="timeout 420 .venv/bin/python benchmarks/locust_channel/run.py --duration 16 --warmup 6 --window 100 --binds 2 --wait-quiet 300 --out $OUT"
run() { echo "== $*" >&2; $R "$@" > /dev/null 2>>/tmp/lc-matrix.err || echo "FAILED: $*" >&2; }
for rep in 1 2; do
  for d in A B C; do
    run --label base --design $d --workers 1 --users 2 --rate 5000
    run --label base --design $d --workers 2 --users 4 --rate 5000
  done
  run --label base --design A --driver direct --workers 0 --users 2 --rate 5000
done
for r in 10000 15000 20000; do
  for d in A B C; do
    run --label sat --design $d --workers 1 --users 2 --rate $r
    run --label sat --design $d --workers 2 --users 4 --rate $r
  done
  run --label sat --design A --driver direct --workers 0 --users 2 --rate $r
done
run --label slow --design A --workers 1 --users 2 --rate 5000 --reply-rate 2000 --timeout 5
run --label slow --design B --workers 1 --users 2 --rate 5000 --reply-rate 2000 --timeout 5
run --label switch --design B --workers 1 --users 2 --rate 5000 --switch-interval 0.0005
run --label switch --design B --workers 2 --users 4 --rate 5000 --switch-interval 0.0005
run --label tick1ms --design A --workers 1 --users 2 --rate 5000 --tick 0.001
run --label users20 --design A --workers 1 --users 20 --rate 5000
run --label noevents --design A --workers 1 --users 2 --rate 5000 --events 0
run --label receipts --design A --workers 1 --users 2 --rate 5000 --receipts 1
run --label window10 --design A --workers 1 --users 2 --rate 5000 --window 10
