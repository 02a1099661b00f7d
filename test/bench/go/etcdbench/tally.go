package main

import (
	"sync"
	"time"
)

// tally is one goroutine's (or one shard's) share of a measurement: a latency histogram of the
// operations that succeeded, the count of those that failed and the first failure's text.
// The mutex is uncontended in the closed loops; it makes a late merge safe when a worker
// overstays its bound.
type tally struct {
	mu         sync.Mutex
	hist       histogram
	operations int64
	errors     int64
	firstError string
}

func (t *tally) record(latency time.Duration, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err != nil {
		t.fail(err.Error())
		return
	}
	t.hist.record(latency)
	t.operations++
}

// failure counts an error that is not one operation's outcome (a stream broke, an event came
// out of order).
func (t *tally) failure(text string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fail(text)
}

func (t *tally) fail(text string) {
	t.errors++
	if t.firstError == "" {
		t.firstError = text
	}
}

func (t *tally) mergeInto(total *tally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	total.hist.merge(&t.hist)
	total.operations += t.operations
	total.errors += t.errors
	if total.firstError == "" {
		total.firstError = t.firstError
	}
}

func mergeTallies(parts []tally) *tally {
	total := &tally{}
	for index := range parts {
		parts[index].mergeInto(total)
	}
	return total
}

// waitBounded waits for wg at most bound; false when the bound ran out first.
func waitBounded(wg *sync.WaitGroup, bound time.Duration) bool {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-done:
		return true
	case <-timer.C:
		return false
	}
}
