package main

import (
	"fmt"
	"io"
	"math/bits"
	"strings"
	"time"
)

// histogram counts durations in log-linear buckets, as HDR histograms do:
// values below 2^histSubBits nanoseconds exactly, every larger power of two
// split into 2^histSubBits equal buckets, so a bucket is at most 1/16 of its
// values wide (6.25% relative error) from 1 ns to 292 years. Fixed size (8
// KiB), no allocation per value; one goroutine records into it.
type histogram struct {
	counts   [histBuckets]uint64
	n        uint64
	sum      time.Duration
	min, max time.Duration
}

const (
	histSubBits = 4
	histSub     = 1 << histSubBits
	histBuckets = (64 - histSubBits) * histSub
)

// histIndex is the bucket of v (ns, v >= 0).
func histIndex(v uint64) int {
	if v < histSub {
		return int(v)
	}
	shift := bits.Len64(v) - histSubBits - 1
	return (shift+1)<<histSubBits + int(v>>shift&(histSub-1))
}

// histBounds returns the smallest and largest value of bucket i.
func histBounds(i int) (lo, hi uint64) {
	if i < histSub {
		return uint64(i), uint64(i)
	}
	shift := i>>histSubBits - 1
	lo = uint64(histSub+i&(histSub-1)) << shift
	return lo, lo + 1<<shift - 1
}

// record adds one value; a negative one (clocks of two machines) counts as 0.
func (h *histogram) record(d time.Duration) {
	d = max(d, 0)
	if h.n == 0 || d < h.min {
		h.min = d
	}
	h.max = max(h.max, d)
	h.n++
	h.sum += d
	h.counts[histIndex(uint64(d))]++
}

// merge adds o's values to h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
	for i, c := range o.counts {
		h.counts[i] += c
	}
}

// quantile returns the value at or below which the fraction q (0..1) of
// the values lie: the upper bound of its bucket, clamped to [min, max]. It
// is 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.999999)
	rank = max(1, min(rank, h.n))
	var seen uint64
	for i, c := range h.counts {
		if seen += c; seen >= rank {
			_, hi := histBounds(i)
			return min(max(time.Duration(hi), h.min), h.max)
		}
	}
	return h.max
}

// mean returns the average value, 0 for an empty histogram.
func (h *histogram) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// barWidth is the width of the longest bar the summary draws.
const barWidth = 40

// bar returns a bar of barWidth*v/full characters, at least one for v > 0.
func bar(v, full float64) string {
	if full <= 0 || v <= 0 {
		return ""
	}
	return strings.Repeat("#", max(1, int(barWidth*v/full+0.5)))
}

// ms formats d in milliseconds with three decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

// draw writes the percentiles (p50, p90, p99, max) with bars to scale, and
// the distribution over power-of-two buckets with bars of their counts.
func (h *histogram) draw(w io.Writer) {
	if h.n == 0 {
		fmt.Fprintln(w, "  no latencies measured")
		return
	}
	for _, p := range []struct {
		name string
		v    time.Duration
	}{{"p50", h.quantile(.50)}, {"p90", h.quantile(.90)}, {"p99", h.quantile(.99)}, {"max", h.max}} {
		fmt.Fprintf(w, "  %-4s %12s  %s\n", p.name, ms(p.v), bar(float64(p.v), float64(h.max)))
	}
	// The distribution: one row per power of two from the minimum's to the
	// maximum's, each the count of values below its bound.
	type row struct{ below, n uint64 }
	var rows []row
	for i := histIndex(uint64(h.min)); i <= histIndex(uint64(h.max)); i++ {
		_, hi := histBounds(i)
		below := uint64(1) << bits.Len64(hi)
		if len(rows) == 0 || rows[len(rows)-1].below != below {
			rows = append(rows, row{below, 0})
		}
		rows[len(rows)-1].n += h.counts[i]
	}
	var most uint64
	for _, r := range rows {
		most = max(most, r.n)
	}
	fmt.Fprintln(w, "  distribution:")
	for _, r := range rows {
		fmt.Fprintf(w, "  < %-8s %10d %5.1f%%  %s\n", short(time.Duration(r.below)), r.n,
			100*float64(r.n)/float64(h.n), bar(float64(r.n), float64(most)))
	}
}

// short formats d with three significant digits: 812ns, 16.4µs, 1.05ms, 2.1s.
func short(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d)
	case d < time.Millisecond:
		return fmt.Sprintf("%.3gµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.3gms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.3gs", d.Seconds())
}
