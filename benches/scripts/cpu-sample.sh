#!/bin/bash
# Samples, every 0.1 s, where the machine's CPU goes during a benchmark: the time, the busy
# and idle clock ticks of all cores (/proc/stat), the CPU of the PostgreSQL postmasters
# with their ended children (utime+stime+cutime+cstime: a backend's CPU reaches its
# postmaster when it exits) and of mariadbd (utime+stime), in clock ticks (1/100 s).
# The sampler itself costs a few percent of one core, counted in "busy".
#
#   benches/scripts/cpu-sample.sh > samples.txt &
#   target/release/fullload --only dts,pipe --sets orders --repeat 3 \
#     | while IFS= read -r l; do echo "$(date +%s.%N) $l"; done > report.txt
#   kill %1; python3 benches/scripts/cpu-windows.py samples.txt report.txt
while true; do
  t=$(date +%s.%N)
  read -r _ u n s i w x y z _ < /proc/stat
  busy=$((u+n+s+x+y+z)); idle=$((i+w))
  pg=0; for p in $( (pgrep -x postgres -P 1; pgrep -f "bin/postgres -D") 2>/dev/null | sort -u); do
    if [ -r /proc/$p/stat ]; then set -- $(sed 's/.*) //' /proc/$p/stat); pg=$((pg + ${12} + ${13} + ${14} + ${15})); fi; done
  my=0; for p in $(pgrep -x mariadbd 2>/dev/null); do
    if [ -r /proc/$p/stat ]; then set -- $(sed 's/.*) //' /proc/$p/stat); my=$((my + ${12} + ${13})); fi; done
  echo "$t $busy $idle $pg $my"
  sleep 0.1
done
