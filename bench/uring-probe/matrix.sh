#!/bin/bash
# Runs every config 3x (round-robin), then once more under perf stat (syscall/ctx-switch counts).
cd "$(dirname "$0")"
OUT=${OUT:-results/raw.txt}
CONFIGS=(
"recv epoll-drain" "recv epoll-single" "recv u-recv" "recv u-recvmsg" "recv u-mshot" "recv u-mshotmsg" "recv u-mshot fixed=1" "recv u-recvmsg taskrun=coop"
"T100 recv epoll-drain" "T100 recv epoll-single" "T100 recv u-recv" "T100 recv u-recvmsg" "T100 recv u-mshot" "T100 recv u-mshotmsg" "T100 recv u-mshot fixed=1" "T100 recv u-recvmsg taskrun=coop"
"send sendto" "send u-sendmsg" "send u-send" "send u-send fixed=1"
"echo epoll-drain" "echo epoll-single" "echo u-recvmsg" "echo u-mshotmsg" "echo u-mshotmsg fixed=1"
"T100 echo epoll-drain" "T100 echo epoll-single" "T100 echo u-recvmsg" "T100 echo u-mshotmsg" "T100 echo u-mshotmsg fixed=1"
)
go() { # $1=tag, rest=config
  local tag=$1; shift
  local t=1000; if [ "$1" = T100 ]; then t=100; shift; fi
  echo "RUN $tag tick_us=$t :: $(TICK_US=$t ./run.sh "$@")" | tee -a $OUT
}
for r in 1 2 3; do for c in "${CONFIGS[@]}"; do go run$r $c; done; done
for c in "${CONFIGS[@]}"; do PERF=1 go perf $c; done
