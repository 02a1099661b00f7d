package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/clientv3/concurrency"
)

// sessionTTLSeconds: long enough that a slow keep-alive under load does not end a session.
const sessionTTLSeconds = 30

// openSessions gives each of `count` workers a concurrency.Session on the clients, round-robin.
// The lease is granted here, with a bound, and handed to NewSession (whose own grant would
// wait as long as the client lives).
func (b *bench) openSessions(clients []*clientv3.Client, count int) ([]*concurrency.Session, error) {
	sessions := make([]*concurrency.Session, count)
	errs := make([]error, count)
	var wg sync.WaitGroup
	for index := range sessions {
		wg.Add(1)
		go func(index int) {
			defer wg.Done()
			client := clients[index%len(clients)]
			ctx, cancel := context.WithTimeout(context.Background(), b.opt.setupTimeout)
			defer cancel()
			lease, err := client.Grant(ctx, sessionTTLSeconds)
			if err == nil {
				sessions[index], err = concurrency.NewSession(client, concurrency.WithLease(lease.ID), concurrency.WithTTL(sessionTTLSeconds))
			}
			errs[index] = err
		}(index)
	}
	if !waitBounded(&wg, b.opt.setupTimeout+time.Second) {
		return nil, fmt.Errorf("sessions not granted within %v", b.opt.setupTimeout)
	}
	for _, err := range errs {
		if err != nil {
			b.closeSessions(sessions)
			return nil, fmt.Errorf("granting a session lease: %w", err)
		}
	}
	return sessions, nil
}

// closeSessions revokes the sessions' leases (each Close is bounded by the TTL), all at once.
func (b *bench) closeSessions(sessions []*concurrency.Session) {
	var wg sync.WaitGroup
	for _, session := range sessions {
		if session == nil {
			continue
		}
		wg.Add(1)
		go func(session *concurrency.Session) {
			defer wg.Done()
			session.Close()
		}(session)
	}
	if !waitBounded(&wg, b.opt.setupTimeout) {
		b.progress("sessions not closed within %v; their leases will expire", b.opt.setupTimeout)
	}
}

// runMutexOwn: each worker locks and unlocks a concurrency.Mutex of its own, on its own session.
func runMutexOwn(b *bench, w *workload) (*result, error) {
	clients, err := b.connect(w.clients)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	sessions, err := b.openSessions(clients, w.clients)
	if err != nil {
		return nil, err
	}
	defer b.closeSessions(sessions)
	mutexes := make([]*concurrency.Mutex, w.clients)
	for index := range mutexes {
		mutexes[index] = concurrency.NewMutex(sessions[index], fmt.Sprintf("bench/lock/%s/%d", b.runID, index))
	}
	return b.closedLoop(w, w.clients, func(ctx context.Context, worker, sequence int) error {
		if err := mutexes[worker].Lock(ctx); err != nil {
			return err
		}
		return mutexes[worker].Unlock(ctx)
	}), nil
}

// handoffs is what the workers of the contended lock share: when the last holder began to
// unlock, and how many hold the lock right now (more than one is a safety violation).
type handoffs struct {
	mu         sync.Mutex
	releasedAt time.Time
	holders    int32
}

// runMutexContended: 8 workers, each with its own session, take turns on one
// concurrency.Mutex. An operation is a hand-off; its latency runs from the moment the holder
// starts Unlock to the moment the next holder's Lock returns (one process, one clock).
func runMutexContended(b *bench, w *workload) (*result, error) {
	clients, err := b.connect(w.clients)
	if err != nil {
		return nil, err
	}
	defer closeAll(clients)
	sessions, err := b.openSessions(clients, w.clients)
	if err != nil {
		return nil, err
	}
	defer b.closeSessions(sessions)
	prefix := fmt.Sprintf("bench/lock/%s/contended", b.runID)
	shared := &handoffs{}
	parts := make([]tally, w.clients)
	var wg sync.WaitGroup
	b.begin(w)
	start := time.Now()
	deadline := start.Add(b.opt.duration)
	for worker := 0; worker < w.clients; worker++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			mutex := concurrency.NewMutex(sessions[worker], prefix)
			for time.Now().Before(deadline) {
				b.contendOnce(mutex, shared, &parts[worker])
			}
		}(worker)
	}
	note := ""
	if !waitBounded(&wg, b.opt.duration+2*b.opt.opTimeout+b.opt.drain) {
		note = "some workers overstayed --op-timeout and were abandoned"
	}
	seconds := time.Since(start).Seconds()
	b.end(w)
	return resultOf(mergeTallies(parts), w.clients, seconds, note), nil
}

// contendOnce is one turn: Lock, note the hand-off, Unlock.
func (b *bench) contendOnce(mutex *concurrency.Mutex, shared *handoffs, part *tally) {
	ctx, cancel := context.WithTimeout(context.Background(), b.opt.opTimeout)
	defer cancel()
	if err := mutex.Lock(ctx); err != nil {
		part.record(0, fmt.Errorf("lock: %w", err))
		return
	}
	acquired := time.Now()
	if holders := atomic.AddInt32(&shared.holders, 1); holders != 1 {
		part.failure(fmt.Sprintf("%d holders of one concurrency.Mutex at once", holders))
	}
	shared.mu.Lock()
	releasedAt := shared.releasedAt
	shared.releasedAt = time.Time{}
	shared.mu.Unlock()
	// The first turn, or one that found the lock free, is not a hand-off.
	if !releasedAt.IsZero() {
		part.record(acquired.Sub(releasedAt), nil)
	}
	atomic.AddInt32(&shared.holders, -1)
	shared.mu.Lock()
	shared.releasedAt = time.Now()
	shared.mu.Unlock()
	if err := mutex.Unlock(ctx); err != nil {
		part.record(0, fmt.Errorf("unlock: %w", err))
	}
}
