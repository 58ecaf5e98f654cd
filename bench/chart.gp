# SPDX-License-Identifier: ISC
# Draws bench/results/chart.png from results.csv: ns per operation per workload, log scale.
set terminal pngcairo size 1100,560 font "sans,10"
set output ARG2
set termoption noenhanced
set datafile separator ","
set title "lockbox and its peers: ns per operation (log scale, lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set logscale y
set yrange [1:*]
set ylabel "ns per operation"
set xtics rotate by -20 scale 0
set key top left
set grid ytics
plot ARG1 using 2:xtic(1) skip 1 title "32 B alloc+write+free", \
     '' using 3 skip 1 title "20k live: free+alloc", \
     '' using 4 skip 1 title "mixed 16 B-4 KiB", \
     '' using 5 skip 1 title "mixed, 2 threads"
