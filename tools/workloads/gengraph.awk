# gengraph.awk -v nodes=N — a directed graph for dot: N labelled nodes in
# clusters, about 1.5 N edges (a tree plus pseudo-random cross edges).
BEGIN {
  if (nodes == "") nodes = 2000
  seed = 11
  print "digraph G {"
  print "  node [shape=box, fontsize=10];"
  for (c = 0; c < 8; c++) {
    printf "  subgraph cluster_%d { label=\"part %d\";", c, c
    for (i = c; i < nodes; i += 8 * 5) printf " n%d;", i
    print " }"
  }
  for (i = 0; i < nodes; i++) printf "  n%d [label=\"node %d\\n%d\"];\n", i, i, rnd() % 1000
  for (i = 1; i < nodes; i++) printf "  n%d -> n%d;\n", int((i - 1) / 3), i
  for (i = 0; i < nodes / 2; i++) printf "  n%d -> n%d [color=gray];\n", rnd() % nodes, rnd() % nodes
  print "}"
}
function rnd() { seed = (seed * 16807) % 2147483647; return seed }
