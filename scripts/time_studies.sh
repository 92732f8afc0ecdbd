#!/bin/bash
# Before/after seconds of every study's quick profile, each in a fresh process and without the cell cache:
#
#     scripts/time_studies.sh BEFORE_CHECKOUT AFTER_CHECKOUT OUT.csv [STUDY ...]
#
# For each study the BEFORE checkout runs, then the AFTER one (interleaved, so both meet the same
# machine load), as `python -m approxlab figures --only STUDY --no-cache` under GNU time (/usr/bin/time -v)
# with one torch/BLAS thread. OUT.csv gets one row per run: study, code (before/after), commit, start_utc,
# wall_s, user_s, sys_s, cpu_s (= user + sys), max_rss_mb, load1_start and load1_end (the 1-minute load
# average of the whole machine before and after: well above 1 means other processes shared the CPUs),
# rc. Figures go to a temporary folder per side (kept, for comparing CSVs), never to figures/.
set -u
before=$(realpath "$1"); after=$(realpath "$2"); out=$3; shift 3
studies=${*:-rational_degree kernel_error bridge features_vs_entropy lesson_exercise speed_vs_length gpu_validation features_by_kind learned_maps}
work=$(mktemp -d)
echo "study,code,commit,start_utc,wall_s,user_s,sys_s,cpu_s,max_rss_mb,load1_start,load1_end,rc" > "$out"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
for study in $studies; do
  for side in before after; do
    repo=$before; [ "$side" = after ] && repo=$after
    mkdir -p "$work/$side"
    load0=$(cut -d' ' -f1 /proc/loadavg); start=$(date -u +%Y-%m-%dT%H:%M:%S)
    (cd "$repo" && PYTHONPATH="$repo" /usr/bin/time -v -o "$work/$side/$study.time" \
        python -m approxlab figures --only "$study" --no-cache --out "$work/$side" > "$work/$side/$study.log" 2>&1)
    rc=$?
    load1=$(cut -d' ' -f1 /proc/loadavg)
    awk -v study="$study" -v side="$side" -v commit="$(git -C "$repo" rev-parse --short HEAD)" -v start="$start" \
        -v l0="$load0" -v l1="$load1" -v rc="$rc" -F': ' '
      /User time/ {user=$2} /System time/ {sys=$2} /Maximum resident/ {rss=$2/1024}
      /Elapsed \(wall clock\)/ {n=split($2, t, ":"); wall=0; for (i=1; i<=n; i++) wall=wall*60+t[i]}
      END {printf "%s,%s,%s,%s,%.2f,%.2f,%.2f,%.2f,%.0f,%s,%s,%s\n", study, side, commit, start, wall, user, sys,
           user+sys, rss, l0, l1, rc}' "$work/$side/$study.time" >> "$out"
  done
done
echo "figures and logs in $work"
