# SPDX-License-Identifier: ISC
# Draws bench/results/bulk_chart.png from bulk.csv (keys, then one column per allocator): ns per
# allocation or free of a 32-byte key against the number of keys, both axes log scale.
set terminal pngcairo size 1100,560 font "sans,10"
set output ARG2
set termoption noenhanced
set datafile separator ","
set datafile missing ""
set title "Bulk: allocate N 32-byte keys, then free them (ns per operation, lower is better)"
set logscale xy
set xrange [700:220000]
set xtics ("1,000" 1000, "20,000" 20000, "150,000" 150000)
set xlabel "keys"
set ylabel "ns per allocation or free"
set key outside right
set grid
columns = system("head -1 '" . ARG1 . "' | awk -F, '{print NF}'")
plot for [c=2:columns] ARG1 using 1:c with linespoints lw 2 title columnhead(c)
