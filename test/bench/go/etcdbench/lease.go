package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/clientv3"
	pb "go.etcd.io/etcd/etcdserver/etcdserverpb"
)

// grantConcurrency: grants and revokes of the lease pool in flight at once.
const grantConcurrency = 256

// leasePool is the --leases leases both keep-alive workloads keep alive, granted once.
type leasePool struct {
	clients []*clientv3.Client
	ids     []int64
}

// pool grants the leases on first use; releaseLeases revokes them before other workloads run.
func (b *bench) pool() (*leasePool, error) {
	if b.leases != nil {
		return b.leases, nil
	}
	clients, err := b.connect(b.opt.conns)
	if err != nil {
		return nil, err
	}
	pool := &leasePool{clients: clients, ids: make([]int64, b.opt.leases)}
	began := time.Now()
	err = b.eachLease(pool, func(ctx context.Context, client *clientv3.Client, index int) error {
		response, err := client.Grant(ctx, b.opt.leaseTTLSeconds)
		if err == nil {
			pool.ids[index] = int64(response.ID)
		}
		return err
	})
	if err != nil {
		b.leases = pool
		b.releaseLeases()
		return nil, fmt.Errorf("granting %d leases: %w", b.opt.leases, err)
	}
	b.progress("granted %d leases (TTL %d s) in %.1f s", len(pool.ids), b.opt.leaseTTLSeconds, time.Since(began).Seconds())
	b.leases = pool
	return pool, nil
}

func (b *bench) releaseLeases() {
	pool := b.leases
	b.leases = nil
	began := time.Now()
	err := b.eachLease(pool, func(ctx context.Context, client *clientv3.Client, index int) error {
		if pool.ids[index] == 0 {
			return nil
		}
		_, err := client.Revoke(ctx, clientv3.LeaseID(pool.ids[index]))
		return err
	})
	if err != nil {
		b.progress("revoking the leases: %v (the rest expire after %d s)", err, b.opt.leaseTTLSeconds)
	} else {
		b.progress("revoked %d leases in %.1f s", len(pool.ids), time.Since(began).Seconds())
	}
	closeAll(pool.clients)
}

// eachLease runs fn for every lease index, grantConcurrency at a time, all within --setup-timeout.
func (b *bench) eachLease(pool *leasePool, fn func(ctx context.Context, client *clientv3.Client, index int) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), b.opt.setupTimeout)
	defer cancel()
	var next int64 = -1
	var failedMu sync.Mutex
	var failed error
	var wg sync.WaitGroup
	for worker := 0; worker < grantConcurrency; worker++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			client := pool.clients[worker%len(pool.clients)]
			for index := int(atomic.AddInt64(&next, 1)); index < len(pool.ids) && ctx.Err() == nil; index = int(atomic.AddInt64(&next, 1)) {
				if err := fn(ctx, client, index); err != nil {
					failedMu.Lock()
					if failed == nil {
						failed = err
					}
					failedMu.Unlock()
					cancel()
				}
			}
		}(worker)
	}
	if !waitBounded(&wg, b.opt.setupTimeout+time.Second) {
		return fmt.Errorf("not done within %v", b.opt.setupTimeout)
	}
	failedMu.Lock()
	defer failedMu.Unlock()
	return failed
}

// keepAliveStream is one LeaseKeepAlive stream with its share of the leases. It speaks the
// stream directly (etcdserverpb, over the clientv3 connection) to time each round trip:
// clientv3's Lease.KeepAlive hides when it sends.
type keepAliveStream struct {
	stream pb.Lease_LeaseKeepAliveClient
	leases []int64
	mu     sync.Mutex
	sentAt map[int64]time.Time
	// window holds a token per keep-alive in flight (flood only).
	window chan struct{}
	part   tally
	done   chan struct{}
}

// openStreams splits the pool over one stream per client.
func (b *bench) openStreams(ctx context.Context, pool *leasePool, window int) ([]*keepAliveStream, error) {
	streams := make([]*keepAliveStream, len(pool.clients))
	for index, client := range pool.clients {
		stream, err := pb.NewLeaseClient(client.ActiveConnection()).LeaseKeepAlive(ctx)
		if err != nil {
			return nil, fmt.Errorf("opening a keep-alive stream: %w", err)
		}
		s := &keepAliveStream{stream: stream, sentAt: map[int64]time.Time{}, done: make(chan struct{})}
		for lease := index; lease < len(pool.ids); lease += len(pool.clients) {
			s.leases = append(s.leases, pool.ids[lease])
		}
		if window > 0 {
			if window > len(s.leases) {
				window = len(s.leases) // one keep-alive in flight per lease at most
			}
			s.window = make(chan struct{}, window)
		}
		streams[index] = s
		go s.receive()
	}
	return streams, nil
}

// receive matches each answer to its request by lease id until the stream ends.
func (s *keepAliveStream) receive() {
	defer close(s.done)
	for {
		response, err := s.stream.Recv()
		if err != nil {
			return // the context was cancelled after the drain; what is unanswered counts then
		}
		s.mu.Lock()
		sentAt, ok := s.sentAt[response.ID]
		delete(s.sentAt, response.ID)
		s.mu.Unlock()
		if s.window != nil && ok {
			<-s.window
		}
		switch {
		case !ok:
			s.part.failure(fmt.Sprintf("an answer for lease %x that has no keep-alive in flight", response.ID))
		case response.TTL <= 0:
			s.part.record(0, fmt.Errorf("lease %x not found (TTL %d)", response.ID, response.TTL))
		default:
			s.part.record(time.Since(sentAt), nil)
		}
	}
}

// send sends one keep-alive for the k-th lease of the stream's share and reports whether it
// went out; the stream's error, when there is one, is returned (the stream is then useless).
func (s *keepAliveStream) send(k int64) (bool, error) {
	id := s.leases[k%int64(len(s.leases))]
	s.mu.Lock()
	if _, busy := s.sentAt[id]; busy {
		s.mu.Unlock()
		s.part.failure(fmt.Sprintf("lease %x: the previous keep-alive is still unanswered", id))
		return false, nil
	}
	s.sentAt[id] = time.Now()
	s.mu.Unlock()
	if err := s.stream.Send(&pb.LeaseKeepAliveRequest{ID: id}); err != nil {
		s.mu.Lock()
		delete(s.sentAt, id)
		s.mu.Unlock()
		s.part.failure(fmt.Sprintf("keep-alive stream: %v", err))
		return false, err
	}
	return true, nil
}

func (s *keepAliveStream) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sentAt)
}

// runKeepAlivePaced: --keepalive-rate keep-alives per second, spread evenly over the streams
// and over the pool's leases (10,000 leases at 2,000/s: each lease every 5 s). The figures
// are the round trips; operations are the keep-alives answered.
func runKeepAlivePaced(b *bench, w *workload) (*result, error) {
	return b.keepAlive(w, 0, func(s *keepAliveStream, index int, start, deadline time.Time, streams int) int64 {
		perStream := float64(b.opt.keepAliveRate) / float64(streams)
		offset := time.Duration(index) * time.Second / time.Duration(b.opt.keepAliveRate)
		var broken bool
		return paced(start.Add(offset), deadline, perStream, func(k int64) {
			if !broken {
				_, err := s.send(k)
				broken = err != nil
			}
		})
	})
}

// runKeepAliveFlood: every stream keeps --keepalive-window keep-alives in flight, cycling over
// its leases, as fast as the answers come back.
func runKeepAliveFlood(b *bench, w *workload) (*result, error) {
	return b.keepAlive(w, b.opt.keepAliveWindow, func(s *keepAliveStream, index int, start, deadline time.Time, streams int) int64 {
		timeUp := time.NewTimer(time.Until(deadline))
		defer timeUp.Stop()
		var sent int64
		for k := int64(0); ; k++ {
			select {
			case s.window <- struct{}{}:
			case <-timeUp.C:
				return sent
			}
			ok, err := s.send(k)
			if !ok {
				<-s.window
			}
			if err != nil {
				return sent
			}
			if ok {
				sent++
			}
		}
	})
}

// sender drives one stream from start to deadline and returns how many keep-alives it sent.
type sender func(s *keepAliveStream, index int, start, deadline time.Time, streams int) int64

// keepAlive runs the senders over one stream per client, then waits (bounded by --drain) for
// the answers still in flight; the unanswered count as errors.
func (b *bench) keepAlive(w *workload, window int, send sender) (*result, error) {
	pool, err := b.pool()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	streams, err := b.openStreams(ctx, pool, window)
	if err != nil {
		return nil, err
	}
	var sent int64
	var wg sync.WaitGroup
	b.begin(w)
	start := time.Now()
	deadline := start.Add(b.opt.duration)
	for index, s := range streams {
		wg.Add(1)
		go func(index int, s *keepAliveStream) {
			defer wg.Done()
			atomic.AddInt64(&sent, send(s, index, start, deadline, len(streams)))
		}(index, s)
	}
	note := ""
	if !waitBounded(&wg, b.opt.duration+b.opt.drain) {
		note = "senders blocked past the window"
	}
	unanswered := drainKeepAlives(streams, b.opt.drain)
	seconds := time.Since(start).Seconds()
	b.end(w)
	cancel()
	total := &tally{}
	for _, s := range streams {
		waitClosed(s.done, b.opt.drain) // the cancelled context ends Recv at once
		s.part.mergeInto(total)
	}
	if unanswered > 0 {
		total.errors += int64(unanswered)
		if total.firstError == "" {
			total.firstError = fmt.Sprintf("%d keep-alives unanswered %v after the window", unanswered, b.opt.drain)
		}
	}
	r := resultOf(total, len(streams), seconds, joinNotes(fmt.Sprintf("%d leases on %d streams", len(pool.ids), len(streams)), note))
	if window == 0 {
		r.Expected = atomic.LoadInt64(&sent)
	}
	return r, nil
}

// drainKeepAlives waits until no stream has a keep-alive in flight, at most bound; it returns
// how many are still unanswered.
func drainKeepAlives(streams []*keepAliveStream, bound time.Duration) int {
	deadline := time.Now().Add(bound)
	for {
		unanswered := 0
		for _, s := range streams {
			unanswered += s.inFlight()
		}
		if unanswered == 0 || time.Now().After(deadline) {
			return unanswered
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitClosed waits for done to be closed, at most bound.
func waitClosed(done <-chan struct{}, bound time.Duration) {
	timer := time.NewTimer(bound)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}
