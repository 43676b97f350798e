# wordfreq.awk — word frequencies, bigrams and per-initial concatenations
# over the input: associative arrays and string building (the awk workload).
{
  for (i = 1; i <= NF; i++) {
    w = $i
    count[w]++
    if (i > 1) pair[$(i - 1) " " w]++
    c = substr(w, 1, 2)
    if (length(cat[c]) < 4000) cat[c] = cat[c] "," w
    else { keep[c] = keep[c] length(cat[c]) ";"; cat[c] = w }
  }
  line[NR % 500] = toupper($0)
}
END {
  # top 20 words without sort(1): repeated selection
  for (k = 1; k <= 20; k++) {
    best = ""; bn = -1
    for (w in count) if (!(w in done) && count[w] > bn) { bn = count[w]; best = w }
    done[best] = 1
    print k, best, bn
  }
  n = 0; for (p in pair) n++
  print "distinct words", length(count) + 0, "pairs", n
  for (c in cat) total += length(cat[c]) + length(keep[c])
  print "concatenated", total
}
