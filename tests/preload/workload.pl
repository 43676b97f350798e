# workload.pl — a hash- and string-heavy, deterministic Perl program for the
# preload tests: hashes of arrays, string building and splitting, sorting,
# regular expressions, references that are dropped. Output sorted.
use strict;
use warnings;

my $n = shift // 30000;
my %h;
my @words;
for my $i (0 .. $n - 1) {
    my $w = sprintf("w%05d-%s", ($i * 7919) % $n, "x" x ($i % 41));
    push @words, $w;
    push @{ $h{ substr($w, 0, 4) } }, $i;
}
my $longest = 0;
for my $k (keys %h) { $longest = @{ $h{$k} } if @{ $h{$k} } > $longest }
print "words ", scalar(@words), " buckets ", scalar(keys %h), " longest $longest\n";

my %count;
my $text = join(" ", map { uc($_) . lc($_) } @words[0 .. $n / 4]);
$count{$_}++ for ($text =~ /([A-Z]\d\d)/g);
print "text ", length($text), " distinct ", scalar(keys %count), "\n";

my @sorted = sort { reverse($a) cmp reverse($b) or length($a) <=> length($b) } @words;
print "sorted $sorted[0] $sorted[-1]\n";

my @recs;
for my $i (0 .. $n / 2) {
    push @recs, { key => $words[$i], vals => [ 1 .. $i % 30 ], str => "r" x ($i % 200) };
}
my $sum = 0;
$sum += @{ $_->{vals} } + length($_->{str}) for @recs;
@recs = ();
print "records sum $sum\n";

my %inv;
while (my ($k, $v) = each %h) { $inv{ scalar(@$v) . ":" . $k } = join(",", @$v[0 .. 2]) }
my @ks = sort keys %inv;
print "inverted ", scalar(@ks), " first $ks[0] last $ks[-1]\n";

my $s = "";
$s .= chr(65 + $_ % 26) for 1 .. 200000;
my @chunks = unpack("(A1000)*", $s);
print "chunks ", scalar(@chunks), " ", substr($chunks[-1], 0, 10), "\n";
