#!/bin/bash
# Completion-batching variant: IORING_ENTER_EXT_ARG min_wait_usec (wait for 16 CQEs or 50us after the first)
cd "$(dirname "$0")"
OUT=${OUT:-results/raw.txt}
CONFIGS=("recv u-mshot want=16 minwait_us=50" "T100 recv u-mshot want=16 minwait_us=50" "echo u-mshotmsg want=16 minwait_us=50" "T100 echo u-mshotmsg want=16 minwait_us=50")
go() { local tag=$1; shift; local t=1000; if [ "$1" = T100 ]; then t=100; shift; fi
  echo "RUN $tag tick_us=$t :: $(TICK_US=$t ./run.sh "$@")" | tee -a $OUT; }
for r in 1 2 3; do for c in "${CONFIGS[@]}"; do go run$r $c; done; done
for c in "${CONFIGS[@]}"; do PERF=1 go perf $c; done
