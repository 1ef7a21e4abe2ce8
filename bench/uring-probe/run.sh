#!/bin/bash
# usage: run.sh recv|echo|send MODE [extra k=v...]   env: WARM SECS PERF=1 (wrap server in perf stat)
set -u
B="$(cd "$(dirname "$0")" && pwd)/target/release/uring-probe"
KIND=$1; MODE=$2; shift 2
WARM=${WARM:-1.5}; SECS=${SECS:-4}
TMP=$(mktemp -d /tmp/uring-probe.XXXX)
LA0=$(cut -d' ' -f1-3 /proc/loadavg)
ST0=$(awk '/^cpu /{print $9}' /proc/stat)
PERFCMD=()
EV=task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendto,syscalls:sys_enter_io_uring_enter,syscalls:sys_enter_clock_nanosleep
PSECS=$(python3 -c "print($SECS-0.5)")
perf_attach() { # attach to server pid after warm-up, for SECS-0.5 s
  [ "${PERF:-0}" = 1 ] || return 0
  sleep $WARM; perf stat -x, -o $TMP/perf.txt -e $EV -p $1 -- sleep $PSECS 2>/dev/null
}
TOT=$(python3 -c "print($WARM+$SECS+0.8)")
case $KIND in
  recv|echo)
    taskset -c 1 "${PERFCMD[@]}" $B ${KIND}srv mode=$MODE portfile=$TMP/ports warm=$WARM secs=$SECS "$@" > $TMP/out 2>$TMP/err &
    SP=$!
    perf_attach $SP &
    R=0; [ $KIND = echo ] && R=1
    taskset -c 0 $B load portfile=$TMP/ports secs=$TOT reply=$R tick_us=${TICK_US:-1000} 2>$TMP/lerr &
    LP=$!
    wait $SP; wait $LP ;;
  send)
    taskset -c 0 $B sink portfile=$TMP/sink secs=$(python3 -c "print($TOT+0.5)") 2>$TMP/lerr &
    LP=$!
    taskset -c 1 $B sendsrv mode=$MODE sinkfile=$TMP/sink warm=$WARM secs=$SECS "$@" > $TMP/out 2>$TMP/err &
    SP=$!
    perf_attach $SP &
    wait $SP; wait $LP ;;
esac
LA1=$(cut -d' ' -f1-3 /proc/loadavg)
ST1=$(awk '/^cpu /{print $9}' /proc/stat)
echo "$(cat $TMP/out) la_before=$LA0 la_after=$LA1 steal_jiffies=$((ST1-ST0)) | $(tr '\n' ' ' < $TMP/err) $(tr '\n' ' ' < $TMP/lerr)"
if [ "${PERF:-0}" = 1 ]; then
  wait
  echo "PERF secs=$PSECS :: $(grep -v '^#' $TMP/perf.txt | grep -v '^$' | awk -F, '{printf "%s=%s ", $3, $1}')"
fi
rm -rf $TMP
