package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
)

// latencyShards: the watchers share this many tallies (1,000 histograms would be 20 MB).
const latencyShards = 32

// watchRun is what the watchers of one run share: the end of the window, the events they
// received (all, and within the window) and their latency tallies.
type watchRun struct {
	windowEndNanos int64
	delivered      int64
	inWindow       int64
	shards         [latencyShards]tally
	consumers      sync.WaitGroup
}

// runWatch: w.clients watchers on one key, spread over the clients (clientv3 multiplexes a
// client's watchers on one stream), and one writer putting to that key — flat out for
// watch-100, at --watch-rate puts/s for watch-1000. Operations are the events delivered
// within the window; Expected is watchers × the puts acknowledged. An event's
// latency runs from the start of its put to its arrival (one process, one clock).
func runWatch(b *bench, w *workload) (*result, error) {
	clients, err := b.connect(b.opt.conns)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	writer, err := b.connect(1)
	if err != nil {
		return nil, err
	}
	defer closeAll(writer)
	key := fmt.Sprintf("bench/watch/%s/%s", b.runID, w.name)
	run := &watchRun{windowEndNanos: 1<<63 - 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		cancel()
		waitBounded(&run.consumers, b.opt.drain)
	}()
	if err := run.startWatchers(ctx, clients, key, w.clients, b.opt.setupTimeout); err != nil {
		return nil, err
	}
	rate := 0
	if w.kind == kindWatchPaced {
		rate = b.opt.watchRate
	}
	b.begin(w)
	start := time.Now()
	deadline := start.Add(b.opt.duration)
	atomic.StoreInt64(&run.windowEndNanos, deadline.UnixNano())
	puts := b.write(writer[0], key, start, deadline, rate)
	b.end(w)
	undelivered := run.drain(int64(w.clients)*atomic.LoadInt64(&puts.acknowledged), b.opt.drain)
	return run.result(w, b.opt.duration.Seconds(), puts, undelivered), nil
}

// startWatchers opens the watchers and waits, bounded, until the server confirmed each one.
func (run *watchRun) startWatchers(ctx context.Context, clients []*clientv3.Client, key string, watchers int, bound time.Duration) error {
	var created sync.WaitGroup
	var refused int64
	for index := 0; index < watchers; index++ {
		channel := clients[index%len(clients)].Watch(ctx, key, clientv3.WithCreatedNotify())
		created.Add(1)
		run.consumers.Add(1)
		go func(index int) {
			defer run.consumers.Done()
			first, ok := <-channel
			if !ok || !first.Created || first.Err() != nil {
				atomic.AddInt64(&refused, 1)
				created.Done()
				return
			}
			created.Done()
			run.consume(index, channel)
		}(index)
	}
	if !waitBounded(&created, bound) {
		return fmt.Errorf("%d watchers not created within %v", watchers, bound)
	}
	if refused > 0 {
		return fmt.Errorf("%d of %d watchers were refused or closed on creation", refused, watchers)
	}
	return nil
}

// consume counts one watcher's events until its channel closes, checking they come in order.
func (run *watchRun) consume(index int, channel clientv3.WatchChan) {
	shard := &run.shards[index%latencyShards]
	var lastRevision int64
	for response := range channel {
		if err := response.Err(); err != nil {
			if response.Canceled && err == context.Canceled {
				return
			}
			shard.failure(fmt.Sprintf("watch: %v", err))
			continue
		}
		arrived := time.Now()
		for _, event := range response.Events {
			if event.Kv.ModRevision <= lastRevision {
				shard.failure(fmt.Sprintf("watch event at revision %d after %d", event.Kv.ModRevision, lastRevision))
			}
			lastRevision = event.Kv.ModRevision
			shard.record(arrived.Sub(stampOf(event.Kv.Value)), nil)
		}
		count := int64(len(response.Events))
		atomic.AddInt64(&run.delivered, count)
		if arrived.UnixNano() < atomic.LoadInt64(&run.windowEndNanos) {
			atomic.AddInt64(&run.inWindow, count)
		}
	}
}

// stampOf reads the time a value was made from its head (see bench.value).
func stampOf(value []byte) time.Time {
	head := string(value)
	if colon := strings.IndexByte(head, ':'); colon > 0 {
		head = head[:colon]
	}
	nanos, err := strconv.ParseInt(head, 10, 64)
	if err != nil {
		return time.Now() // not ours: count it with no latency
	}
	return time.Unix(0, nanos)
}

// drain waits, bounded, until every acknowledged put reached every watcher; it returns how
// many events are still missing.
func (run *watchRun) drain(expected int64, bound time.Duration) int64 {
	deadline := time.Now().Add(bound)
	for {
		missing := expected - atomic.LoadInt64(&run.delivered)
		if missing <= 0 || time.Now().After(deadline) {
			if missing < 0 {
				return 0
			}
			return missing
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (run *watchRun) result(w *workload, seconds float64, puts *writes, undelivered int64) *result {
	total := mergeTallies(run.shards[:])
	r := resultOf(total, w.clients, seconds, "")
	r.Operations = atomic.LoadInt64(&run.inWindow)
	r.Errors += puts.part.errors
	if r.FirstError == "" {
		r.FirstError = puts.part.firstError
	}
	// Every put began within the window: had the watchers kept up, all their events would have
	// arrived in it (but for the last put's).
	r.Expected = int64(w.clients) * puts.acknowledged
	r.Undelivered = undelivered
	r.Note = fmt.Sprintf("%d puts acknowledged, %d of them in the window (%.0f/s, put p50 %.2f ms, p99 %.2f ms)",
		puts.acknowledged, puts.inWindow, float64(puts.inWindow)/seconds, puts.part.hist.percentileMs(0.5), puts.part.hist.percentileMs(0.99))
	if undelivered > 0 {
		r.Note += fmt.Sprintf("; %d events still undelivered at the end of the drain", undelivered)
	}
	return r
}

// writes is the writer's account: puts acknowledged (all, and within the window) and a tally.
type writes struct {
	acknowledged int64
	inWindow     int64
	part         tally
}

// write puts to key until the deadline: back to back (rate 0), or at rate puts per second
// whatever their latency (each put in its own goroutine, so a slow server cannot slow the
// offered rate down). Each value carries the time its put began. It returns when the last put
// has been answered or has timed out.
func (b *bench) write(client *clientv3.Client, key string, start, deadline time.Time, rate int) *writes {
	account := &writes{}
	put := func(int64) {
		ctx, cancel := context.WithTimeout(context.Background(), b.opt.opTimeout)
		defer cancel()
		began := time.Now()
		_, err := client.Put(ctx, key, b.value(began))
		account.part.record(time.Since(began), err)
		if err == nil {
			atomic.AddInt64(&account.acknowledged, 1)
			if time.Now().Before(deadline) {
				atomic.AddInt64(&account.inWindow, 1)
			}
		}
	}
	if rate == 0 {
		for k := int64(0); time.Now().Before(deadline); k++ {
			put(k)
		}
		return account
	}
	var inFlight sync.WaitGroup
	paced(start, deadline, float64(rate), func(k int64) {
		inFlight.Add(1)
		go func() {
			defer inFlight.Done()
			put(k)
		}()
	})
	inFlight.Wait() // each put is bounded by --op-timeout
	return account
}
