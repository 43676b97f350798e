# gentext.awk -v words=N — N pseudo-random words, 12 to a line, from a
# vocabulary of made-up words (syllables), skewed so a few words are common.
# Park–Miller generator: the same text from any awk (gawk, mawk, busybox).
BEGIN {
  if (words == "") words = 300000
  ns = split("ka lo mi ne ru sa to vi be da fe go hu ji ke la mo nu pa qui re si tu wa xe yo ze an el in on un ar er ir or", syl, " ")
  seed = 42
  for (i = 0; i < words; i++) {
    # Log-uniform ranks over 30000 words: Zipf-like, a few words common.
    rank = int(exp((rnd() % 1000000) / 1000000 * log(30000))) - 1
    w = ""
    x = rank + 1
    while (x > 0) { w = w syl[x % ns + 1]; x = int(x / ns) }
    line = line (i % 12 ? " " : "") w
    if (i % 12 == 11) { print line; line = "" }
  }
  if (line != "") print line
}
function rnd() { seed = (seed * 16807) % 2147483647; return seed }
