package main

import (
	"math/bits"
	"time"
)

// subBuckets is the resolution of the histogram: every power of two of microseconds is split
// into this many buckets, so a reported percentile is within 1/64 (1.6%) of the true value.
const subBuckets = 64

// maxShift bounds the histogram at 2^(maxShift+7) µs (about 39 hours): latencies above it
// land in the last bucket.
const maxShift = 40

// histogram counts latencies in log-linear buckets of microseconds: exact below 128 µs,
// then 64 buckets per power of two. Not safe for concurrent use; each goroutine keeps its
// own and they are merged at the end.
type histogram struct {
	counts [subBuckets*(maxShift+1) + subBuckets]int64
	total  int64
}

func bucketOf(micros int64) int {
	if micros < 0 {
		micros = 0
	}
	if micros < 2*subBuckets {
		return int(micros)
	}
	shift := bits.Len64(uint64(micros)) - 7 // micros>>shift is in [64, 128)
	if shift > maxShift {
		return len(histogram{}.counts) - 1
	}
	return subBuckets*shift + int(micros>>uint(shift))
}

// bucketMidMicros is the middle of the bucket's range, the value a percentile reports.
func bucketMidMicros(bucket int) float64 {
	if bucket < 2*subBuckets {
		return float64(bucket)
	}
	shift := bucket/subBuckets - 1
	mantissa := int64(bucket - subBuckets*shift)
	low := mantissa << uint(shift)
	return float64(low) + float64(int64(1)<<uint(shift))/2
}

func (h *histogram) record(latency time.Duration) {
	h.counts[bucketOf(latency.Microseconds())]++
	h.total++
}

func (h *histogram) merge(other *histogram) {
	for bucket, count := range other.counts {
		h.counts[bucket] += count
	}
	h.total += other.total
}

// percentileMs is the latency below which `fraction` of the samples fall, in milliseconds;
// 0 when there are no samples.
func (h *histogram) percentileMs(fraction float64) float64 {
	if h.total == 0 {
		return 0
	}
	rank := int64(fraction*float64(h.total) + 0.5)
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for bucket, count := range h.counts {
		seen += count
		if seen >= rank {
			return bucketMidMicros(bucket) / 1000
		}
	}
	return bucketMidMicros(len(h.counts)-1) / 1000
}
