package loadtest

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: values are recorded in microseconds, from 1 µs to one
// hour, with 3 significant digits.
const (
	histMaxMicros = int64(time.Hour / time.Microsecond)
	histDigits    = 3
	histShards    = 16
)

// hist is a latency histogram safe for concurrent recording: writers are
// spread over a few independently locked HdrHistograms, merged on read.
type hist struct {
	shards [histShards]struct {
		mu sync.Mutex
		h  *hdrhistogram.Histogram
		_  [40]byte // keep shards on separate cache lines
	}
}

func newHist() *hist {
	h := &hist{}
	for i := range h.shards {
		h.shards[i].h = hdrhistogram.New(1, histMaxMicros, histDigits)
	}
	return h
}

// record adds d to the shard picked by key (e.g. a connection index).
// Negative durations count as 0, durations over an hour as an hour.
func (h *hist) record(key int, d time.Duration) {
	us := int64(d / time.Microsecond)
	us = min(max(us, 0), histMaxMicros)
	s := &h.shards[uint(key)%histShards]
	s.mu.Lock()
	s.h.RecordValue(us) // in range by construction
	s.mu.Unlock()
}

// merged returns one histogram holding every recorded value.
func (h *hist) merged() *hdrhistogram.Histogram {
	out := hdrhistogram.New(1, histMaxMicros, histDigits)
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		out.Merge(s.h)
		s.mu.Unlock()
	}
	return out
}

// quantiles are the summary of a histogram, in milliseconds.
type quantiles struct {
	count                    int64
	p50, p90, p99, max, mean float64
}

func summarize(h *hdrhistogram.Histogram) quantiles {
	if h.TotalCount() == 0 {
		return quantiles{}
	}
	ms := func(us int64) float64 { return round3(float64(us) / 1000) }
	return quantiles{
		count: h.TotalCount(),
		p50:   ms(h.ValueAtQuantile(50)),
		p90:   ms(h.ValueAtQuantile(90)),
		p99:   ms(h.ValueAtQuantile(99)),
		max:   ms(h.Max()),
		mean:  round3(h.Mean() / 1000),
	}
}
