"""CPU per benchmark run: reads the samples of cpu-sample.sh and the fullload report with a
Unix time before each line, and prints for every `[set] tool run i/n: X s` line the CPU
seconds spent during that run's window (its end minus its wall time): all cores busy and
idle, PostgreSQL, mariadbd, and the rest (the tool's own processes, the sampler, noise)."""
import sys, re, bisect
samples=[tuple(map(float,l.split())) for l in open(sys.argv[1]) if len(l.split())==5]
ts=[s[0] for s in samples]
def at(t):
    i=bisect.bisect_left(ts,t); i=min(max(i,0),len(ts)-1); return samples[i]
for l in open(sys.argv[2]):
    m=re.match(r'(\d+\.\d+) \[(\w+)\] (\w+) run (\d+)/\d+: ([\d.]+) s',l)
    if not m: continue
    end=float(m.group(1)); wall=float(m.group(5)); a=at(end-wall); b=at(end)
    d=[(b[k]-a[k])/100 for k in range(1,5)]
    print(f"{m.group(2)} {m.group(3)} run {m.group(4)}: wall {wall:.2f}  busy {d[0]:.2f} idle {d[1]:.2f}  postgres {d[2]:.2f}  mariadbd {d[3]:.2f}  rest {d[0]-d[2]-d[3]:.2f} (CPU-s)")
