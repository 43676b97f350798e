#!/usr/bin/perl
# textstat.pl — the perl workload: hashes, strings and regular expressions
# over a generated text (tools/workloads/gentext.awk).
use strict;
use warnings;
my (%count, %len, %suffix, @lines);
while (my $line = <>) {
    chomp $line;
    push @lines, $line if $. % 7 == 0;
    for my $w (split ' ', $line) {
        $count{$w}++;
        push @{ $len{length $w} }, $w if @{ $len{length $w} // [] } < 2000;
        $suffix{$1} .= substr($w, 0, 2) if $w =~ /([aeiou][a-z])$/;
    }
    (my $t = $line) =~ s/\b(\w)(\w*)/\U$1\E$2/g;
    $t =~ s/([aeiou])\1+/$1/g;
    $count{"#lines"} += ($t =~ tr/A-Z//);
}
my @top = (sort { $count{$b} <=> $count{$a} || $a cmp $b } keys %count)[0 .. 19];
print "$_ $count{$_}\n" for grep { defined } @top;
my $joined = join "|", map { join ",", sort @{ $len{$_} } } sort { $a <=> $b } keys %len;
printf "lengths %d joined %d\n", scalar(keys %len), length $joined;
printf "suffixes %d total %d\n", scalar(keys %suffix), eval { my $s = 0; $s += length for values %suffix; $s };
my %rev = map { scalar(reverse $_) => 1 } @lines;
printf "kept lines %d reversed %d\n", scalar @lines, scalar keys %rev;
