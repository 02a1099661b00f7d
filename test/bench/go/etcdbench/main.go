// Command etcdbench drives an etcd v3 cluster — gavel or etcd itself — with etcd's own Go
// client (clientv3 and clientv3/concurrency, built from Debian's golang-etcd-server-dev) and
// reports ops/s, latency percentiles and errors per workload. It is the Go half of
// test/bench/go-compare.ts, which starts the clusters, measures their CPU and prints the
// side-by-side table; run by hand it prints a table of its own. Build it with
// test/bench/go/build.sh.
//
//	etcdbench --endpoints 127.0.0.1:2379,127.0.0.1:22379 [--duration 10] [--only put-1,txn-16] [--json]
//
// Workloads are closed loops (or paced where the name says so) of N goroutines sharing at most
// --conns clients, each client pinned to one endpoint, round-robin, as etcd's benchmark tool
// shares its connections. Every wait is bounded: an operation by --op-timeout, setup and
// teardown by --setup-timeout, the in-flight tail after a measurement by --drain.
//
// With --json, stdout carries one JSON object per line: {"type":"client"} first, then per
// workload {"type":"begin"} and {"type":"end"} around its measured window (the driver samples
// the members' CPU there) and {"type":"result"}. Progress and errors go to stderr.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/version"
)

type options struct {
	endpoints       []string
	duration        time.Duration
	only            []string
	json            bool
	conns           int
	valueBytes      int
	opTimeout       time.Duration
	setupTimeout    time.Duration
	drain           time.Duration
	leases          int
	leaseTTLSeconds int64
	keepAliveRate   int
	keepAliveWindow int
	watchRate       int
}

// result is one workload's figures. Operations are what the workload counts (puts, lock
// cycles, hand-offs, keep-alives, delivered events), over Seconds.
type result struct {
	Type       string  `json:"type"`
	Workload   string  `json:"workload"`
	Title      string  `json:"title"`
	Kind       string  `json:"kind"`
	Unit       string  `json:"unit"`
	Clients    int     `json:"clients"`
	Seconds    float64 `json:"seconds"`
	Operations int64   `json:"operations"`
	Errors     int64   `json:"errors"`
	FirstError string  `json:"firstError,omitempty"`
	P50Ms      float64 `json:"p50Ms"`
	P99Ms      float64 `json:"p99Ms"`
	// Expected: paced keep-alives scheduled, or watch events the acknowledged puts should
	// have delivered within the window.
	Expected int64 `json:"expected,omitempty"`
	// Undelivered: watch events still missing after the drain.
	Undelivered int64  `json:"undelivered,omitempty"`
	Failed      string `json:"failed,omitempty"`
	Note        string `json:"note,omitempty"`
}

// Kinds tell the driver how to compare a row: by throughput, by hand-offs, by the latency of
// a paced load, or by watch events delivered (against what a paced writer makes them).
const (
	kindThroughput = "throughput"
	kindHandoff    = "handoff"
	kindPaced      = "paced"
	kindWatch      = "watch"
	kindWatchPaced = "watch-paced"
)

type workload struct {
	name  string
	title string
	kind  string
	unit  string
	// clients is the number of concurrent clients (or watchers) the row reports.
	clients int
	run     func(b *bench, w *workload) (*result, error)
}

func workloads(opt options) []*workload {
	leases := fmt.Sprintf("%s leases", thousands(opt.leases))
	return []*workload{
		{"put-1", "put, 1 client", kindThroughput, "puts", 1, runPut},
		{"put-16", "put, 16 clients", kindThroughput, "puts", 16, runPut},
		{"put-256", "put, 256 clients", kindThroughput, "puts", 256, runPut},
		{"txn-16", "txn create-if-absent, 16 clients", kindThroughput, "txns", 16, runTxn},
		{"range-linearizable-16", "range linearizable, 16 clients", kindThroughput, "ranges", 16, runRange},
		{"range-serializable-16", "range serializable, 16 clients", kindThroughput, "ranges", 16, runRange},
		{"mutex-1", "concurrency.Mutex lock+unlock, own lock, 1 client", kindThroughput, "cycles", 1, runMutexOwn},
		{"mutex-64", "concurrency.Mutex lock+unlock, own locks, 64 clients", kindThroughput, "cycles", 64, runMutexOwn},
		{"mutex-contended-8", "concurrency.Mutex, 8 clients on one lock", kindHandoff, "hand-offs", 8, runMutexContended},
		{"keepalive-paced", fmt.Sprintf("lease keep-alive, %s paced at %s/s", leases, thousands(opt.keepAliveRate)), kindPaced, "keep-alives", 0, runKeepAlivePaced},
		{"keepalive-flood", fmt.Sprintf("lease keep-alive, %s, flood", leases), kindThroughput, "keep-alives", 0, runKeepAliveFlood},
		{"watch-100", "watch fan-out, 100 watchers, writer flat out", kindWatch, "events", 100, runWatch},
		{"watch-1000", fmt.Sprintf("watch fan-out, 1,000 watchers at %d puts/s", opt.watchRate), kindWatchPaced, "events", 1000, runWatch},
	}
}

// thousands spells 10000 as 10k and 2500 as 2.5k.
func thousands(count int) string {
	if count < 1000 {
		return fmt.Sprint(count)
	}
	return strings.TrimSuffix(strings.TrimSuffix(fmt.Sprintf("%.1f", float64(count)/1000), "0"), ".") + "k"
}

// bench carries what every workload shares: the options, a run id that keeps keys apart
// between invocations, the lease pool of the keep-alive workloads, and stdout.
type bench struct {
	opt    options
	runID  string
	leases *leasePool
	// fill is --value-bytes of padding, shared read-only by the writers.
	fill string
	out  sync.Mutex
}

func main() {
	opt, err := parseOptions()
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdbench: %v\n", err)
		os.Exit(2)
	}
	b := &bench{opt: opt, runID: fmt.Sprintf("%x", time.Now().UnixNano()), fill: strings.Repeat("v", opt.valueBytes)}
	selected, err := selectWorkloads(workloads(opt), opt.only)
	if err != nil {
		fmt.Fprintf(os.Stderr, "etcdbench: %v\n", err)
		os.Exit(2)
	}
	b.emit(clientInfo{"client", version.Version, runtime.Version()})
	b.progress("etcd clientv3 %s, %s, endpoints %s", version.Version, runtime.Version(), strings.Join(opt.endpoints, ","))
	results := make([]*result, 0, len(selected))
	failed := false
	for index, w := range selected {
		// The lease pool serves both keep-alive workloads; revoke it before anything else runs.
		if b.leases != nil && !strings.HasPrefix(w.name, "keepalive-") {
			b.releaseLeases()
		}
		r := b.runOne(w)
		failed = failed || r.Failed != ""
		results = append(results, r)
		b.emit(r)
		if index == len(selected)-1 && b.leases != nil {
			b.releaseLeases()
		}
	}
	if !opt.json {
		printResults(results)
	}
	if failed {
		os.Exit(1)
	}
}

func (b *bench) runOne(w *workload) *result {
	b.progress("%s: starting", w.name)
	r, err := w.run(b, w)
	if err != nil {
		b.progress("%s: failed: %v", w.name, err)
		r = &result{Failed: err.Error()}
	}
	r.Type, r.Workload, r.Title, r.Kind, r.Unit = "result", w.name, w.title, w.kind, w.unit
	if r.Clients == 0 {
		r.Clients = w.clients
	}
	if r.Failed == "" {
		b.progress("%s: %d %s in %.1f s (%.0f/s), p50 %.2f ms, p99 %.2f ms, %d errors%s",
			w.name, r.Operations, w.unit, r.Seconds, rate(r), r.P50Ms, r.P99Ms, r.Errors, firstErrorSuffix(r))
	}
	return r
}

func selectWorkloads(all []*workload, only []string) ([]*workload, error) {
	if len(only) == 0 {
		return all, nil
	}
	wanted := map[string]bool{}
	for _, name := range only {
		wanted[name] = true
	}
	var selected []*workload
	for _, w := range all {
		if wanted[w.name] {
			selected = append(selected, w)
			delete(wanted, w.name)
		}
	}
	if len(wanted) > 0 {
		unknown := make([]string, 0, len(wanted))
		for name := range wanted {
			unknown = append(unknown, name)
		}
		sort.Strings(unknown)
		return nil, fmt.Errorf("unknown workload(s) %s; known: %s", strings.Join(unknown, ", "), strings.Join(names(all), ", "))
	}
	return selected, nil
}

func names(all []*workload) []string {
	out := make([]string, len(all))
	for index, w := range all {
		out[index] = w.name
	}
	return out
}

func parseOptions() (options, error) {
	var opt options
	var endpoints, only string
	var durationSeconds float64
	var list bool
	flag.StringVar(&endpoints, "endpoints", "127.0.0.1:2379", "comma-separated client endpoints (host:port)")
	flag.Float64Var(&durationSeconds, "duration", 10, "seconds per workload")
	flag.StringVar(&only, "only", "", "comma-separated workloads to run (default: all; see --list)")
	flag.BoolVar(&list, "list", false, "list the workloads and exit")
	flag.BoolVar(&opt.json, "json", false, "print JSON lines (begin/end markers and results) instead of a table")
	flag.IntVar(&opt.conns, "conns", 16, "clients (gRPC connections) shared by a workload's goroutines, at most")
	flag.IntVar(&opt.valueBytes, "value-bytes", 256, "bytes per value written")
	flag.DurationVar(&opt.opTimeout, "op-timeout", 10*time.Second, "bound on one operation")
	flag.DurationVar(&opt.setupTimeout, "setup-timeout", 60*time.Second, "bound on a workload's setup and teardown")
	flag.DurationVar(&opt.drain, "drain", 5*time.Second, "bound on the wait for answers and events still in flight after a window")
	flag.IntVar(&opt.leases, "leases", 10000, "leases kept alive by the keep-alive workloads")
	flag.Int64Var(&opt.leaseTTLSeconds, "lease-ttl", 60, "TTL of those leases, seconds")
	flag.IntVar(&opt.keepAliveRate, "keepalive-rate", 2000, "keep-alives per second in keepalive-paced")
	flag.IntVar(&opt.keepAliveWindow, "keepalive-window", 128, "keep-alives in flight per stream in keepalive-flood")
	flag.IntVar(&opt.watchRate, "watch-rate", 40, "puts per second in watch-1000")
	flag.Parse()
	if list {
		for _, w := range workloads(opt) {
			fmt.Printf("%-22s %s\n", w.name, w.title)
		}
		os.Exit(0)
	}
	if flag.NArg() > 0 {
		return opt, fmt.Errorf("unexpected argument %q", flag.Arg(0))
	}
	opt.endpoints = splitList(endpoints)
	opt.only = splitList(only)
	opt.duration = time.Duration(durationSeconds * float64(time.Second))
	switch {
	case len(opt.endpoints) == 0:
		return opt, fmt.Errorf("--endpoints is empty")
	case opt.duration <= 0:
		return opt, fmt.Errorf("--duration must be positive")
	case opt.conns < 1 || opt.valueBytes < 24 || opt.leases < 1 || opt.keepAliveRate < 1 || opt.keepAliveWindow < 1 || opt.watchRate < 1:
		return opt, fmt.Errorf("--conns, --leases, --keepalive-rate, --keepalive-window and --watch-rate must be positive, --value-bytes at least 24")
	case opt.opTimeout <= 0 || opt.setupTimeout <= 0 || opt.drain <= 0 || opt.leaseTTLSeconds < 1:
		return opt, fmt.Errorf("--op-timeout, --setup-timeout, --drain and --lease-ttl must be positive")
	}
	return opt, nil
}

func splitList(text string) []string {
	var out []string
	for _, part := range strings.Split(text, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// Output.

func (b *bench) emit(value interface{}) {
	if !b.opt.json {
		return
	}
	line, err := json.Marshal(value)
	if err != nil {
		panic(err) // our own structs always marshal
	}
	b.out.Lock()
	defer b.out.Unlock()
	os.Stdout.Write(append(line, '\n'))
}

// clientInfo names the client: etcd's clientv3 version (the one the sources declare) and Go's.
type clientInfo struct {
	Type          string `json:"type"`
	ClientVersion string `json:"clientVersion"`
	GoVersion     string `json:"goVersion"`
}

type marker struct {
	Type     string `json:"type"`
	Workload string `json:"workload"`
}

// begin and end bracket a measured window; the driver samples the members' CPU on each.
func (b *bench) begin(w *workload) { b.emit(marker{"begin", w.name}) }
func (b *bench) end(w *workload)   { b.emit(marker{"end", w.name}) }

func (b *bench) progress(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "[etcdbench %s] %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

func rate(r *result) float64 {
	if r.Seconds <= 0 {
		return 0
	}
	return float64(r.Operations) / r.Seconds
}

func firstErrorSuffix(r *result) string {
	if r.FirstError == "" {
		return ""
	}
	return fmt.Sprintf(" (first: %s)", r.FirstError)
}

func printResults(results []*result) {
	fmt.Printf("%-52s %8s %10s %9s %9s %7s  %s\n", "workload", "clients", "per s", "p50 ms", "p99 ms", "errors", "note")
	for _, r := range results {
		if r.Failed != "" {
			fmt.Printf("%-52s failed: %s\n", r.Title, r.Failed)
			continue
		}
		note := r.Note
		if r.Expected > 0 {
			note = strings.TrimSpace(fmt.Sprintf("%s expected %.0f/s", note, float64(r.Expected)/r.Seconds))
		}
		fmt.Printf("%-52s %8d %10.0f %9.2f %9.2f %7d  %s%s\n", r.Title, r.Clients, rate(r), r.P50Ms, r.P99Ms, r.Errors, note, firstErrorSuffix(r))
	}
}
