# Shell helpers the perf scripts share (sourced by rt-ab.sh and vs-iggy.sh): the process they
# started ($pid) stopped on exit, a process's CPU ticks, and a broker's metric summed over its
# labels ($HTTP). Not meant to be run.

pid=""
stop() { if [[ -n $pid ]]; then kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi; pid=""; }
trap stop EXIT
# utime + stime of process $1, in clock ticks (getconf CLK_TCK per second).
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# The sum of every sample of counter or gauge $1 on the broker at $HTTP.
metric() { curl -s "http://$HTTP/metrics" | awk -v m="$1" '$1 ~ "^"m"(_total)?[{ ]" || $1 == m"_total" || $1 == m {s += $2} END {printf "%d", s}'; }
