#!/usr/bin/env python3
"""Summarise results/raw.txt -> table of min/median/max CPU us per datagram and perf counts per datagram."""
import re, sys, statistics as st
from collections import defaultdict
path = sys.argv[1] if len(sys.argv) > 1 else "results/raw.txt"
runs = defaultdict(list); perf = {}; la = defaultdict(list); steal = defaultdict(list); order = []
last = None
for line in open(path):
    if line.startswith("RUN"):
        tag = line.split()[1]; tick = re.search(r"tick_us=(\d+)", line).group(1)
        kv = dict(re.findall(r"(\w+)=([^\s|]+)", line.split("::", 1)[1].split("|")[0]))
        key = (tick, kv["kind"], kv["mode"], kv.get("fixed", "-") if kv["mode"].startswith("u-") else "-",
               (kv.get("taskrun", "-") + ("" if kv.get("want", "1") == "1" else f" want={kv['want']} minwait={kv['minwait_us']}us")) if kv["mode"].startswith("u-") else "-")
        if key not in order: order.append(key)
        rate = max(float(kv["in_rate"]), float(kv["out_rate"]))
        if tag == "perf":
            last = (key, rate)
        else:
            runs[key].append(dict(u=float(kv["user_per"]), s=float(kv["sys_per"]), t=float(kv["tot_per"]),
                                  epw=float(kv["evs_per_wait"]), wps=float(kv["waits"]) / float(kv["dt"])))
            m = re.search(r"la_before=([\d.]+) .*la_after=([\d.]+)", line); la[key].append((m.group(1), m.group(2)))
            steal[key].append(int(re.search(r"steal_jiffies=(-?\d+)", line).group(1)))
    elif line.startswith("PERF") and last:
        key, rate = last
        secs = float(re.search(r"secs=([\d.]+)", line).group(1))
        c = dict((k, float(v)) for k, v in re.findall(r"([\w:-]+)=([\d.]+)", line.split("::", 1)[1]))
        n = rate * secs
        perf[key] = dict(sc=c.get("raw_syscalls:sys_enter", 0) / n, cs=c.get("context-switches", 0) / n,
                         tc=c.get("task-clock", 0) * 1e3 / n,
                         detail=" ".join(f"{k.split('sys_enter_')[-1]}={v/n:.2f}" for k, v in c.items()
                                         if k.startswith("syscalls:") and v > 0))
def mmm(xs): return f"{min(xs):.2f}/{st.median(xs):.2f}/{max(xs):.2f}"
print("| tick | kind | mode | fixed | taskrun | total us/dgram min/med/max | user us | sys us | wakeups/s | dgrams(cqes)/wake | syscalls/dgram | ctxsw/dgram | syscalls by type /dgram | loadavg before->after | steal jiffies |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for k in order:
    r = runs[k]
    if not r: continue
    p = perf.get(k, {})
    print(f"| {k[0]} | {k[1]} | {k[2]} | {k[3]} | {k[4]} | {mmm([x['t'] for x in r])} | {mmm([x['u'] for x in r])} | {mmm([x['s'] for x in r])} | "
          f"{st.median([x['wps'] for x in r]):.0f} | {st.median([x['epw'] for x in r]):.2f} | "
          f"{p.get('sc', float('nan')):.2f} | {p.get('cs', float('nan')):.3f} | {p.get('detail','')} (perf task-clock {p.get('tc',float('nan')):.2f}us) | "
          f"{','.join(a+'->'+b for a,b in la[k])} | {','.join(map(str, steal[k]))} |")
