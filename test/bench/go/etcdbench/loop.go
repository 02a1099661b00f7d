package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
	"go.etcd.io/etcd/pkg/logutil"
	"go.uber.org/zap"
)

const dialTimeout = 5 * time.Second

// connect opens min(wanted, --conns) clients, the i-th pinned to endpoint i mod len, so the
// load spreads over every member (a follower forwards what it cannot answer itself).
func (b *bench) connect(wanted int) ([]*clientv3.Client, error) {
	count := wanted
	if count > b.opt.conns {
		count = b.opt.conns
	}
	logConfig := logutil.DefaultZapLoggerConfig
	logConfig.Level = zap.NewAtomicLevelAt(zap.ErrorLevel) // the client's retry warnings would flood stderr
	clients := make([]*clientv3.Client, 0, count)
	for index := 0; index < count; index++ {
		endpoint := b.opt.endpoints[index%len(b.opt.endpoints)]
		client, err := clientv3.New(clientv3.Config{
			Endpoints:   []string{endpoint},
			DialTimeout: dialTimeout,
			LogConfig:   &logConfig,
		})
		if err != nil {
			closeAll(clients)
			return nil, fmt.Errorf("connecting to %s: %w", endpoint, err)
		}
		clients = append(clients, client)
	}
	return clients, nil
}

func closeAll(clients []*clientv3.Client) {
	for _, client := range clients {
		client.Close()
	}
}

// operation is one request (or one cycle) of worker `worker`, its `sequence`-th.
type operation func(ctx context.Context, worker, sequence int) error

// closedLoop runs `clients` workers, each repeating op back to back for --duration, each op
// bounded by --op-timeout. Operations still in flight when the window closes are waited for
// and counted, and the seconds run until the last one returns (as a closed loop does).
func (b *bench) closedLoop(w *workload, clients int, op operation) *result {
	parts := make([]tally, clients)
	var wg sync.WaitGroup
	b.begin(w)
	start := time.Now()
	deadline := start.Add(b.opt.duration)
	for worker := 0; worker < clients; worker++ {
		wg.Add(1)
		go func(worker int) {
			defer wg.Done()
			for sequence := 0; time.Now().Before(deadline); sequence++ {
				ctx, cancel := context.WithTimeout(context.Background(), b.opt.opTimeout)
				began := time.Now()
				err := op(ctx, worker, sequence)
				cancel()
				parts[worker].record(time.Since(began), err)
			}
		}(worker)
	}
	note := ""
	if !waitBounded(&wg, b.opt.duration+b.opt.opTimeout+b.opt.drain) {
		note = "some workers overstayed --op-timeout and were abandoned"
	}
	seconds := time.Since(start).Seconds()
	b.end(w)
	return resultOf(mergeTallies(parts), clients, seconds, note)
}

func resultOf(t *tally, clients int, seconds float64, note string) *result {
	return &result{
		Clients:    clients,
		Seconds:    seconds,
		Operations: t.operations,
		Errors:     t.errors,
		FirstError: t.firstError,
		P50Ms:      t.hist.percentileMs(0.50),
		P99Ms:      t.hist.percentileMs(0.99),
		Note:       note,
	}
}

// paced calls send(k) for k = 0, 1, ... at start + k/perSecond until the deadline, sleeping
// between; a sender that fell behind catches up at once. It returns how many it sent.
func paced(start, deadline time.Time, perSecond float64, send func(k int64)) int64 {
	var k int64
	for {
		due := start.Add(time.Duration(float64(k) / perSecond * float64(time.Second)))
		if !due.Before(deadline) {
			return k
		}
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		send(k)
		k++
	}
}

// value is a --value-bytes value whose head is the time it was made (for watch latency).
func (b *bench) value(stamp time.Time) string {
	head := fmt.Sprintf("%d:", stamp.UnixNano())
	if len(head) >= len(b.fill) {
		return head
	}
	return head + b.fill[len(head):]
}

// timeZero stamps the values of the workloads that do not read the stamp back.
var timeZero = time.Unix(0, 0)

// joinNotes joins the non-empty notes with "; ".
func joinNotes(notes ...string) string {
	var kept []string
	for _, note := range notes {
		if note != "" {
			kept = append(kept, note)
		}
	}
	return strings.Join(kept, "; ")
}
