package driver_test

// Parts 5, 6 and 7 of `make bench` (issue 11), in-process: the whole plugin
// (real socket, handler, driver, bbolt file, netlink in a lab namespace)
// with the test sending the engine's requests. They skip unless MVS_BENCH is
// smoke or full, write test/bench/benchres parts, and never fail on a time:
// only on a figure they could not produce or a link left behind.
//
//	MVS_BENCH=smoke go test -count=1 -run 'TestBench(Protocol|Growth|Teardown)$' -v ./internal/driver/
//	MVS_BENCH=full  go test -count=1 -run 'TestBench(Protocol|Growth|Teardown)$' -v -timeout 10m ./internal/driver/
//
// Part 5 takes MVS_BENCH_P5_ROUNDS (default 3) and MVS_BENCH_P5_CYCLES (cycles per
// round and variant, default 2000), for side-by-side runs of two builds.

import (
	"fmt"
	"math"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
	bolt "go.etcd.io/bbolt"
)

// benchMode skips the test unless a bench run asked for it.
func benchMode(t *testing.T) benchres.Mode {
	t.Helper()
	m := benchres.CurrentMode()
	if m == benchres.Off {
		t.Skip("a bench part: set MVS_BENCH=smoke or MVS_BENCH=full to run it")
	}
	return m
}

// timedLinks times the kernel calls a request makes (Get, AddMacvlan, …)
// apart from those of the reaper and the reclaim sweep (List, Retire,
// Delete, DeleteGroup), which run in their own goroutines.
type timedLinks struct {
	driver.LinkLayer
	req    atomic.Int64 // ns spent in request-path calls
	reap   atomic.Int64 // ns spent in DeleteGroup
	groups atomic.Int64 // DeleteGroup calls
	// handled is the time the protocol handler spent on requests, from
	// the observer (timedBench).
	handled *atomic.Int64

	mu      sync.Mutex
	deletes [][2]time.Time // when each DeleteGroup ran
}

// overlapsDelete reports whether [from, to] overlaps a DeleteGroup call.
func (l *timedLinks) overlapsDelete(from, to time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, d := range l.deletes {
		if d[0].Before(to) && d[1].After(from) {
			return true
		}
	}
	return false
}

func (l *timedLinks) since(start time.Time) { l.req.Add(int64(time.Since(start))) }

func (l *timedLinks) Get(name string) (link.Info, error) {
	defer l.since(time.Now())
	return l.LinkLayer.Get(name)
}

func (l *timedLinks) AddMacvlan(spec link.MacvlanSpec) error {
	defer l.since(time.Now())
	return l.LinkLayer.AddMacvlan(spec)
}

func (l *timedLinks) Rearm(name, mark string, spec link.MacvlanSpec) error {
	defer l.since(time.Now())
	return l.LinkLayer.Rearm(name, mark, spec)
}

func (l *timedLinks) Mark(name, mark string) error {
	defer l.since(time.Now())
	return l.LinkLayer.Mark(name, mark)
}

func (l *timedLinks) DeleteGroup(group uint32) error {
	start := time.Now()
	err := l.LinkLayer.DeleteGroup(group)
	end := time.Now()
	l.reap.Add(int64(end.Sub(start)))
	l.mu.Lock()
	l.deletes = append(l.deletes, [2]time.Time{start, end})
	l.mu.Unlock()
	l.groups.Add(1)
	return err
}

// cycleBody is one endpoint's four requests, encoded before the clock runs.
type cycleBody struct{ create, join, leave, del []byte }

// cycleBodies makes n endpoint life cycles on netID, endpoint ids from seed,
// addresses counting up from 10.128.0.10 + first in a /9.
func cycleBodies(tb testing.TB, netID, seed string, first, n int) []cycleBody {
	out := make([]cycleBody, n)
	for i := range out {
		ep := hexID(fmt.Sprintf("%s-%d", seed, first+i))
		out[i] = cycleBody{
			create: mustJSON(tb, wiretest.CreateEndpoint(netID, ep, addrIn9(first+i), "", "")),
			join:   mustJSON(tb, wiretest.Join(netID, ep)),
			leave:  mustJSON(tb, wiretest.Leave(netID, ep)),
			del:    mustJSON(tb, wiretest.DeleteEndpoint(netID, ep)),
		}
	}
	return out
}

// addrIn9 is the i-th address from 10.128.0.10, as a /9 prefix.
func addrIn9(i int) string {
	n := uint32(10 + i)
	a := netip.AddrFrom4([4]byte{10, 128 + byte(n>>16), byte(n >> 8), byte(n)})
	return netip.PrefixFrom(a, 9).String()
}

// post sends one request that must succeed and returns how long the client
// waited for it.
func (b *bench) post(tb testing.TB, method string, body []byte) time.Duration {
	start := time.Now()
	status, raw, err := b.do(method, body)
	took := time.Since(start)
	if err != nil || status != http.StatusOK {
		tb.Fatalf("%s: status %d %s %v", method, status, raw, err)
	}
	return took
}

// cycleSample is one endpoint cycle as the client saw it, and the part of it
// spent in request-path netlink calls and in state commits.
type cycleSample struct {
	total, netlink, commit time.Duration
	handled                time.Duration    // inside the protocol handler
	req                    [4]time.Duration // CreateEndpoint, Join, Leave, DeleteEndpoint
	start                  time.Time
	// reaping: a group delete ran while this cycle did (markReaping).
	reaping bool
}

var cycleMethods = [4]string{"CreateEndpoint", "Join", "Leave", "DeleteEndpoint"}

// runCycles runs the cycles back to back and measures each.
func runCycles(tb testing.TB, pl *bench, tl *timedLinks, commits *atomic.Int64, cycles []cycleBody) []cycleSample {
	out := make([]cycleSample, len(cycles))
	for i, c := range cycles {
		nl0, cm0, h0 := tl.req.Load(), commits.Load(), tl.handled.Load()
		start := time.Now()
		for j, body := range [4][]byte{c.create, c.join, c.leave, c.del} {
			out[i].req[j] = pl.post(tb, cycleMethods[j], body)
		}
		out[i].start, out[i].total = start, time.Since(start)
		out[i].handled = time.Duration(tl.handled.Load() - h0)
		out[i].netlink = time.Duration(tl.req.Load() - nl0)
		out[i].commit = time.Duration(commits.Load() - cm0)
	}
	return out
}

// markReaping sets reaping on the cycles that overlapped a group delete;
// call it once the reaper is flushed (a DeleteGroup is recorded when it
// returns, which is after the kernel let go of RTNL).
func markReaping(s []cycleSample, tl *timedLinks) {
	for i := range s {
		s[i].reaping = tl.overlapsDelete(s[i].start, s[i].start.Add(s[i].total))
	}
}

// timedBench is newBench with the link layer timed and commits counted.
func timedBench(tb testing.TB, o benchOpts) (*bench, *timedLinks, *atomic.Int64) {
	var tl *timedLinks
	inner := o.wrap
	o.wrap = func(h *link.Handle) driver.LinkLayer {
		var l driver.LinkLayer = h
		if inner != nil {
			l = inner(h)
		}
		tl = &timedLinks{LinkLayer: l}
		return tl
	}
	handled := new(atomic.Int64)
	o.observe = func(s protocol.Served) { handled.Add(int64(s.Took)) }
	pl := newBench(tb, o)
	tl.handled = handled
	commits := new(atomic.Int64)
	pl.d.ObserveCommits(func(took time.Duration) { commits.Add(int64(took)) })
	return pl, tl, commits
}

func durs(s []cycleSample, f func(cycleSample) time.Duration) []float64 {
	out := make([]float64, len(s))
	for i, c := range s {
		out[i] = ms(f(c))
	}
	return out
}

func sumDur(s []cycleSample, f func(cycleSample) time.Duration) time.Duration {
	var t time.Duration
	for _, c := range s {
		t += f(c)
	}
	return t
}

// TestBenchProtocol is part 5: the endpoint cycle (CreateEndpoint, Join,
// Leave, DeleteEndpoint) over the real socket, its p50 and p99, and what
// part of it is netlink and what is the plugin's own. Two variants run in
// interleaved rounds: production (the reaper deletes retired links in the
// background every DefaultReapDelay) and the reaper held until the round
// ends (its link deletions, and their hold on the kernel's RTNL lock, kept
// out of the measured window): the gap between their p99s is the reaper's.
func TestBenchProtocol(t *testing.T) {
	mode := benchMode(t)
	began := time.Now()
	rounds, n := benchres.EnvInt(t.Fatalf, "MVS_BENCH_P5_ROUNDS", mode.Rounds(3), 1), benchres.EnvInt(t.Fatalf, "MVS_BENCH_P5_CYCLES", mode.Pick(2000, 50), 1)
	variants := []struct {
		label string
		delay time.Duration
	}{
		{"production", driver.DefaultReapDelay},
		{"reaper held", time.Hour},
	}
	type result struct {
		p50, p99 []float64 // per round
		pooled   []cycleSample
		reapMs   float64 // DeleteGroup time, all rounds
		groups   int64
	}
	res := make([]result, len(variants))
	for r := range rounds {
		for k := range variants {
			idx := (k + r) % len(variants) // alternate which goes first
			v := variants[idx]
			t.Run(fmt.Sprintf("round%d/%s", r+1, v.label), func(t *testing.T) {
				pl, tl, commits := timedBench(t, benchOpts{reapDelay: v.delay})
				netID := swarmID("part5")
				pl.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.128.0.0/9", "10.128.0.1/9")))
				// A few cycles first, so that connections and caches are warm.
				runCycles(t, pl, tl, commits, cycleBodies(t, netID, fmt.Sprintf("warm-%d", r), 0, 20))
				pl.d.Flush()
				tl.reap.Store(0)
				tl.groups.Store(0)
				s := runCycles(t, pl, tl, commits, cycleBodies(t, netID, fmt.Sprintf("r%d", r), 100, n))
				pl.d.Flush()
				markReaping(s, tl)
				if left := pl.mvsLinks(t); len(left) > 0 {
					t.Fatalf("%d host links left after the run", len(left))
				}
				tot := durs(s, func(c cycleSample) time.Duration { return c.total })
				res[idx].p50 = append(res[idx].p50, benchres.Quantile(tot, 0.50))
				res[idx].p99 = append(res[idx].p99, benchres.Quantile(tot, 0.99))
				res[idx].pooled = append(res[idx].pooled, s...)
				res[idx].reapMs += ms(time.Duration(tl.reap.Load()))
				res[idx].groups += tl.groups.Load()
				t.Logf("%s: cycle p50 %.2f ms, p99 %.2f ms, max %.2f ms over %d cycles", v.label,
					benchres.Quantile(tot, 0.50), benchres.Quantile(tot, 0.99), benchres.Quantile(tot, 1), n)
				logSlowest(t, s, 5)
			})
		}
	}
	if t.Failed() {
		return
	}

	prod, held := res[0], res[1]
	part := benchres.Part{N: 5, Title: "the protocol's cost in-process", Mode: mode}
	part.Add(benchres.Figure{Name: "endpoint cycle, p50", Label: "production", Value: benchres.Median(prod.p50), Unit: "ms",
		Peer: "reaper held", PeerValue: benchres.Median(held.p50), Samples: rounds, Paired: benchres.PairedRatios(prod.p50, held.p50),
		Note: "CreateEndpoint + Join + Leave + DeleteEndpoint over the socket, as the client waits for them"})
	part.Add(benchres.Figure{Name: "endpoint cycle, p99", Label: "production", Value: benchres.Median(prod.p99), Unit: "ms",
		Peer: "reaper held", PeerValue: benchres.Median(held.p99), Samples: rounds, Paired: benchres.PairedRatios(prod.p99, held.p99),
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 2}})

	// Where the cycle goes, of the summed client-side time of all production
	// cycles: netlink is the driver's request-path kernel calls (timedLinks),
	// commits the state transactions (bbolt, two fdatasyncs each), transport
	// what the handler did not see (HTTP over the socket at both ends,
	// connection handling, scheduling), and the plugin's own share the rest
	// of the handler's time: reading and decoding the request, the driver's
	// logic and locks, encoding the answer.
	cycle := sumDur(prod.pooled, func(c cycleSample) time.Duration { return c.total })
	nl := sumDur(prod.pooled, func(c cycleSample) time.Duration { return c.netlink })
	commit := sumDur(prod.pooled, func(c cycleSample) time.Duration { return c.commit })
	handled := sumDur(prod.pooled, func(c cycleSample) time.Duration { return c.handled })
	own, transport := handled-nl-commit, cycle-handled
	pct := func(d time.Duration) float64 { return 100 * float64(d) / float64(cycle) }
	perCycle := func(d time.Duration) float64 { return ms(d) / float64(len(prod.pooled)) }
	part.Add(benchres.Figure{Name: "plugin's own share of the cycle", Label: "plugin", Value: pct(own), Unit: "%",
		Peer: "netlink", PeerValue: pct(nl), Samples: len(prod.pooled),
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 10},
		Note:   "of the summed client-side cycle time; plugin = time in the protocol handler − netlink calls − state commits"})
	part.Add(benchres.Figure{Name: "state commits (bbolt, fdatasync), share of the cycle", Label: "commits", Value: pct(commit), Unit: "%",
		Peer: "netlink", PeerValue: pct(nl), Samples: len(prod.pooled)})
	part.Add(benchres.Figure{Name: "HTTP transport, share of the cycle", Label: "transport", Value: pct(transport), Unit: "%",
		Peer: "netlink", PeerValue: pct(nl), Samples: len(prod.pooled), Note: "client-side time the handler did not see: HTTP at both ends, the socket, scheduling"})
	for _, b := range []struct {
		label string
		d     time.Duration
	}{{"netlink", nl}, {"state commits", commit}, {"plugin's own", own}, {"HTTP transport", transport}} {
		part.AddSeries(benchres.Series{Chart: "part5-split", Title: "where an endpoint cycle goes (mean per cycle)", Kind: "bar", Label: b.label, Unit: "ms",
			Value: []float64{perCycle(b.d)}})
	}
	part.Add(benchres.Figure{Name: "mean endpoint cycle", Label: "production", Value: perCycle(cycle), Unit: "ms", Samples: len(prod.pooled)})
	for j, m := range cycleMethods {
		f := func(c cycleSample) time.Duration { return c.req[j] }
		part.Add(benchres.Figure{Name: m + ", p99", Label: "production", Value: benchres.Quantile(durs(prod.pooled, f), 0.99), Unit: "ms",
			Peer: "reaper held", PeerValue: benchres.Quantile(durs(held.pooled, f), 0.99), Samples: len(prod.pooled)})
	}
	part.AddSeries(benchres.Series{Chart: "part5-cycle", Title: "endpoint cycle over the socket", Kind: "dist", Label: "production", Unit: "ms",
		Value: durs(prod.pooled, func(c cycleSample) time.Duration { return c.total })})
	part.AddSeries(benchres.Series{Chart: "part5-cycle", Title: "endpoint cycle over the socket", Kind: "dist", Label: "reaper held", Unit: "ms",
		Value: durs(held.pooled, func(c cycleSample) time.Duration { return c.total })})
	part.Notes = append(part.Notes,
		fmt.Sprintf("%d rounds of %d cycles per variant, interleaved; p50 and p99 are medians of the rounds' values", rounds, n),
		fmt.Sprintf("production: %d group deletes took %.1f ms in all during the measured cycles", prod.groups, prod.reapMs),
		fmt.Sprintf("mean cycle %.3f ms: netlink %.3f ms (%.1f %%), state commits %.3f ms (%.1f %%), plugin's own %.3f ms (%.1f %%), HTTP transport %.3f ms (%.1f %%)",
			perCycle(cycle), perCycle(nl), pct(nl), perCycle(commit), pct(commit), perCycle(own), pct(own), perCycle(transport), pct(transport)))
	writePart(t, part, began)
}

// logSlowest logs where the slowest cycles spent their time.
func logSlowest(t *testing.T, s []cycleSample, k int) {
	t.Helper()
	slow := slices.Clone(s)
	slices.SortFunc(slow, func(a, b cycleSample) int { return int(b.total - a.total) })
	for _, c := range slow[:min(k, len(slow))] {
		t.Logf("  slow cycle %.2f ms: create %.2f join %.2f leave %.2f delete %.2f; netlink %.2f, commits %.2f; during a group delete %v",
			ms(c.total), ms(c.req[0]), ms(c.req[1]), ms(c.req[2]), ms(c.req[3]), ms(c.netlink), ms(c.commit), c.reaping)
	}
	p99 := slow[len(slow)/100].total
	var all, over, overSlow, nSlow int
	for _, c := range s {
		all++
		slowOne := c.total >= p99
		if slowOne {
			nSlow++
		}
		if c.reaping {
			over++
			if slowOne {
				overSlow++
			}
		}
	}
	t.Logf("  cycles during a group delete: %d of %d (%.0f %%); of the %d at or above p99: %d (%.0f %%)",
		over, all, 100*float64(over)/float64(all), nSlow, overSlow, 100*float64(overSlow)/float64(max(nSlow, 1)))
}

// writePart logs the part's figures and writes it.
func writePart(t *testing.T, part benchres.Part, began time.Time) {
	t.Helper()
	part.Seconds = time.Since(began).Seconds()
	for _, f := range part.Figures {
		if !finite(f.Value) || f.Peer != "" && !finite(f.PeerValue) {
			t.Errorf("part %d: %q has no value", part.N, f.Name)
		}
		line := fmt.Sprintf("part %d: %s: %s %s %s", part.N, f.Name, f.Label, benchres.Num(f.Value), f.Unit)
		if f.Peer != "" {
			line += fmt.Sprintf(" | %s %s %s (%.2f×)", f.Peer, benchres.Num(f.PeerValue), f.Unit, f.Ratio())
		}
		if f.Target != nil {
			line += fmt.Sprintf(" | target %s: %s", f.Target.String(f.Unit), f.Verdict())
		}
		t.Log(line)
	}
	for _, n := range part.Notes {
		t.Logf("part %d: %s", part.N, n)
	}
	path, err := benchres.Write(part)
	if err != nil {
		t.Fatalf("write part %d: %v", part.N, err)
	}
	t.Logf("part %d written to %s", part.N, path)
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// TestBenchGrowth is part 6: the cost per operation as the node's work
// grows. One network gets 1000 endpoints, each created and joined (a
// container start; its link stays in the host namespace, as if the engine
// had not moved it yet); the endpoint cycle is measured with 1, 100 and 1000
// endpoints on the node; the plugin is restarted on 1 and on 1000 endpoints
// (with their 1000 host links); then every endpoint is deleted. Apart, 100
// networks on one parent. "Flat" is last ÷ first ≤ 1.2, for the first and
// the last hundred operations of each kind.
func TestBenchGrowth(t *testing.T) {
	mode := benchMode(t)
	began := time.Now()
	rounds := mode.Rounds(3)
	total, chunk := mode.Pick(1000, 40), mode.Pick(100, 10)
	nets := mode.Pick(100, 10)
	checkpoints := []int{1, total / 10, total}

	type round struct {
		startFirst, startLast float64 // p50 of CreateEndpoint+Join, first and last chunk
		delFirst, delLast     float64 // p50 of DeleteEndpoint
		cycleAt               []float64
		restart1, restartN    float64
		rss1, rssN            float64
		netFirst, netLast     float64    // p50 CreateNetwork
		netCycle1, netCycleN  float64    // p50 cycle on the first network alone, and across all
		parts                 [4]float64 // p50 netlink and commits of CreateEndpoint+Join, first then last chunk
		kernFirst, kernLast   float64    // p50 of a bare macvlan create + mark, no plugin: the kernel's floor
		store1, storeN        float64    // p50 of a cycle's three commits on a bare bbolt file with 1 and total records: the store's floor
		firstMs, lastMs       []float64  // CreateEndpoint+Join of the first and last chunk
	}
	var rs []round
	for r := range rounds {
		t.Run(fmt.Sprintf("round%d/endpoints", r+1), func(t *testing.T) {
			var rd round
			// The kernel's floor, in turns before and after the plugin's run.
			if r%2 == 0 {
				rd.kernFirst, rd.kernLast = kernelCreates(t, total, chunk)
				rd.store1, rd.storeN = storeCycles(t, total, chunk)
			}
			pl, tl, commits := timedBench(t, benchOpts{reapDelay: driver.DefaultReapDelay})
			netID := swarmID("part6")
			pl.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.128.0.0/9", "10.128.0.1/9")))
			bodies := cycleBodies(t, netID, fmt.Sprintf("grow-%d", r), 0, total)
			cyc := 0 // cycles use addresses above the endpoints'
			var starts, startNl, startCm []time.Duration
			for i, c := range bodies {
				nl0, cm0 := tl.req.Load(), commits.Load()
				start := time.Now()
				pl.post(t, "CreateEndpoint", c.create)
				pl.post(t, "Join", c.join)
				starts = append(starts, time.Since(start))
				startNl = append(startNl, time.Duration(tl.req.Load()-nl0))
				startCm = append(startCm, time.Duration(commits.Load()-cm0))
				if !slices.Contains(checkpoints, i+1) {
					continue
				}
				runtime.GC()
				cs := cycleBodies(t, netID, fmt.Sprintf("grow-%d-cycle", r), total+cyc, chunk)
				cyc += chunk
				var d, dNl, dCm []time.Duration
				for _, c := range cs {
					nl0, cm0 := tl.req.Load(), commits.Load()
					s := time.Now()
					pl.post(t, "CreateEndpoint", c.create)
					pl.post(t, "Join", c.join)
					pl.post(t, "Leave", c.leave)
					pl.post(t, "DeleteEndpoint", c.del)
					d = append(d, time.Since(s))
					dNl = append(dNl, time.Duration(tl.req.Load()-nl0))
					dCm = append(dCm, time.Duration(commits.Load()-cm0))
				}
				rd.cycleAt = append(rd.cycleAt, benchres.Median(benchres.Ms(d)))
				t.Logf("cycle p50 with %d endpoints: %.3f ms (netlink %.3f, commits %.3f)", i+1, benchres.Median(benchres.Ms(d)), benchres.Median(benchres.Ms(dNl)), benchres.Median(benchres.Ms(dCm)))
				if i+1 == 1 || i+1 == total {
					pl.d.Flush()
					pl.stop(t)
					s := time.Now()
					pl.start(t)
					took := ms(time.Since(s))
					pl.d.ObserveCommits(func(took time.Duration) { commits.Add(int64(took)) })
					runtime.GC()
					rss := float64(vmRSS(t)) / (1 << 20)
					if i+1 == 1 {
						rd.restart1, rd.rss1 = took, rss
					} else {
						rd.restartN, rd.rssN = took, rss
					}
					if got := len(pl.d.Snapshot().Endpoints); got != i+1 {
						t.Fatalf("restored %d endpoints, want %d", got, i+1)
					}
				}
			}
			rd.startFirst = benchres.Median(benchres.Ms(starts[:chunk]))
			rd.startLast = benchres.Median(benchres.Ms(starts[len(starts)-chunk:]))
			p50First := func(d []time.Duration) float64 { return benchres.Median(benchres.Ms(d[:chunk])) }
			p50Last := func(d []time.Duration) float64 { return benchres.Median(benchres.Ms(d[len(d)-chunk:])) }
			t.Logf("CreateEndpoint+Join p50, first %d: %.3f ms (netlink %.3f, commits %.3f); last %d: %.3f ms (netlink %.3f, commits %.3f)",
				chunk, p50First(starts), p50First(startNl), p50First(startCm), chunk, p50Last(starts), p50Last(startNl), p50Last(startCm))
			rd.firstMs, rd.lastMs = benchres.Ms(starts[:chunk]), benchres.Ms(starts[len(starts)-chunk:])
			rd.parts = [4]float64{p50First(startNl), p50First(startCm), p50Last(startNl), p50Last(startCm)}
			var dels []time.Duration
			for _, c := range bodies {
				dels = append(dels, pl.post(t, "DeleteEndpoint", c.del))
			}
			rd.delFirst = benchres.Median(benchres.Ms(dels[:chunk]))
			rd.delLast = benchres.Median(benchres.Ms(dels[len(dels)-chunk:]))
			pl.wantNoMvsLinks(t)
			if r%2 == 1 {
				rd.kernFirst, rd.kernLast = kernelCreates(t, total, chunk)
				rd.store1, rd.storeN = storeCycles(t, total, chunk)
			}

			// 100 networks on one parent.
			pl2 := newBench(t, benchOpts{reapDelay: driver.DefaultReapDelay})
			var creates []time.Duration
			ids := make([]string, nets)
			for k := range nets {
				ids[k] = swarmID(fmt.Sprintf("part6-net-%d-%d", r, k))
				body := mustJSON(t, wiretest.CreateNetwork(ids[k], onEth0(), wiretest.Pool(fmt.Sprintf("10.%d.%d.0/24", 1+k/250, k%250), fmt.Sprintf("10.%d.%d.1/24", 1+k/250, k%250))))
				creates = append(creates, pl2.post(t, "CreateNetwork", body))
				if k == 0 {
					rd.netCycle1 = netCycles(t, pl2, ids[:1], nets, r)
				}
			}
			rd.netCycleN = netCycles(t, pl2, ids, nets, r+1000)
			first := max(1, nets/10)
			rd.netFirst = benchres.Median(benchres.Ms(creates[:first]))
			rd.netLast = benchres.Median(benchres.Ms(creates[len(creates)-first:]))
			pl2.wantNoMvsLinks(t)
			rs = append(rs, rd)
		})
	}
	if t.Failed() {
		return
	}
	med := func(f func(round) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return benchres.Median(v)
	}
	// pair is the per-round ratio a ÷ b: both come from the same round.
	pair := func(a, b func(round) float64) []float64 {
		var av, bv []float64
		for _, r := range rs {
			av, bv = append(av, a(r)), append(bv, b(r))
		}
		return benchres.PairedRatios(av, bv)
	}
	flat := &benchres.Target{Of: "ratio", Op: "<=", Limit: 1.2}
	part := benchres.Part{N: 6, Title: "cost as the work grows", Mode: mode}
	part.Add(benchres.Figure{Name: fmt.Sprintf("CreateEndpoint + Join, p50 of the last %d of %d", chunk, total), Label: fmt.Sprintf("last %d", chunk), Value: med(func(r round) float64 { return r.startLast }), Unit: "ms",
		Peer: fmt.Sprintf("first %d", chunk), PeerValue: med(func(r round) float64 { return r.startFirst }), Samples: len(rs), Target: flat,
		Paired: pair(func(r round) float64 { return r.startLast }, func(r round) float64 { return r.startFirst })})
	part.Add(benchres.Figure{Name: fmt.Sprintf("the kernel's floor: macvlan create + mark without the plugin, p50 of the last %d of %d", chunk, total), Label: fmt.Sprintf("last %d", chunk),
		Value: med(func(r round) float64 { return r.kernLast }), Unit: "ms",
		Peer: fmt.Sprintf("first %d", chunk), PeerValue: med(func(r round) float64 { return r.kernFirst }), Samples: len(rs),
		Paired: pair(func(r round) float64 { return r.kernLast }, func(r round) float64 { return r.kernFirst }),
		Note:   "the same netlink calls as Join's link (parent lookup, create, ownership mark), on a parent of its own in a namespace of its own, no plugin: what one more macvlan on a parent costs the kernel; no target"})
	// The plugin's figure without the kernel's growth: its last hundred less
	// what the bare create grew by in the same round.
	above := func(r round) float64 { return r.startLast - (r.kernLast - r.kernFirst) }
	part.Add(benchres.Figure{Name: fmt.Sprintf("CreateEndpoint + Join above the kernel's floor, p50 of the last %d of %d", chunk, total), Label: fmt.Sprintf("last %d − kernel's growth", chunk),
		Value: med(above), Unit: "ms",
		Peer: fmt.Sprintf("first %d", chunk), PeerValue: med(func(r round) float64 { return r.startFirst }), Samples: len(rs),
		Paired: pair(above, func(r round) float64 { return r.startFirst }),
		Note:   "the last hundred less the bare create's growth (last − first) of the same round: what the plugin's own work grows by; no target"})
	part.Add(benchres.Figure{Name: fmt.Sprintf("DeleteEndpoint, p50 of the last %d of %d", chunk, total), Label: fmt.Sprintf("last %d", chunk), Value: med(func(r round) float64 { return r.delLast }), Unit: "ms",
		Peer: fmt.Sprintf("first %d", chunk), PeerValue: med(func(r round) float64 { return r.delFirst }), Samples: len(rs), Target: flat,
		Paired: pair(func(r round) float64 { return r.delLast }, func(r round) float64 { return r.delFirst })})
	for k := 1; k < len(checkpoints); k++ {
		part.Add(benchres.Figure{Name: fmt.Sprintf("endpoint cycle p50 with %d endpoints on the node", checkpoints[k]), Label: fmt.Sprintf("%d endpoints", checkpoints[k]),
			Value: med(func(r round) float64 { return r.cycleAt[k] }), Unit: "ms",
			Peer: "1 endpoint", PeerValue: med(func(r round) float64 { return r.cycleAt[0] }), Samples: len(rs), Target: flat,
			Paired: pair(func(r round) float64 { return r.cycleAt[k] }, func(r round) float64 { return r.cycleAt[0] })})
	}
	part.Add(benchres.Figure{Name: fmt.Sprintf("the store's floor: a cycle's three commits on a bare bbolt file, p50 with %d records", total), Label: fmt.Sprintf("%d records", total),
		Value: med(func(r round) float64 { return r.storeN }), Unit: "ms",
		Peer: "1 record", PeerValue: med(func(r round) float64 { return r.store1 }), Samples: len(rs),
		Paired: pair(func(r round) float64 { return r.storeN }, func(r round) float64 { return r.store1 }),
		Note:   "put, put again, delete of one endpoint-sized record under a 64-hex key, each its own durable transaction, as CreateEndpoint, Join and DeleteEndpoint commit, on the same disk, no plugin: what the B+tree's extra levels cost; no target"})
	aboveStore := func(r round) float64 { return r.cycleAt[len(r.cycleAt)-1] - (r.storeN - r.store1) }
	part.Add(benchres.Figure{Name: fmt.Sprintf("endpoint cycle p50 with %d endpoints above the store's floor", total), Label: fmt.Sprintf("%d endpoints − store's growth", total),
		Value: med(aboveStore), Unit: "ms",
		Peer: "1 endpoint", PeerValue: med(func(r round) float64 { return r.cycleAt[0] }), Samples: len(rs),
		Paired: pair(aboveStore, func(r round) float64 { return r.cycleAt[0] }),
		Note:   "the cycle with the endpoints less the bare store's growth (with them − without) of the same round; no target"})
	part.Add(benchres.Figure{Name: fmt.Sprintf("start after a restart (listen, open state, restore) on %d endpoints and host links", total), Label: fmt.Sprintf("%d endpoints", total),
		Value: med(func(r round) float64 { return r.restartN }), Unit: "ms", Peer: "1 endpoint", PeerValue: med(func(r round) float64 { return r.restart1 }), Samples: len(rs),
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 300}})
	part.Add(benchres.Figure{Name: fmt.Sprintf("RSS of the test process with %d endpoints", total), Label: fmt.Sprintf("%d endpoints", total),
		Value: med(func(r round) float64 { return r.rssN }), Unit: "MiB", Peer: "1 endpoint", PeerValue: med(func(r round) float64 { return r.rss1 }), Samples: len(rs),
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 30}, Note: "whole test process (test binary, lab sockets): an upper bound on the daemon's"})
	part.Add(benchres.Figure{Name: fmt.Sprintf("CreateNetwork on one parent, p50 of the last %d of %d", max(1, nets/10), nets), Label: fmt.Sprintf("last %d", max(1, nets/10)),
		Value: med(func(r round) float64 { return r.netLast }), Unit: "ms", Peer: fmt.Sprintf("first %d", max(1, nets/10)), PeerValue: med(func(r round) float64 { return r.netFirst }), Samples: len(rs), Target: flat,
		Paired: pair(func(r round) float64 { return r.netLast }, func(r round) float64 { return r.netFirst })})
	part.Add(benchres.Figure{Name: fmt.Sprintf("endpoint cycle p50 with %d networks on the parent", nets), Label: fmt.Sprintf("%d networks", nets),
		Value: med(func(r round) float64 { return r.netCycleN }), Unit: "ms", Peer: "1 network", PeerValue: med(func(r round) float64 { return r.netCycle1 }), Samples: len(rs), Target: flat,
		Paired: pair(func(r round) float64 { return r.netCycleN }, func(r round) float64 { return r.netCycle1 })})
	var bars, kbars, firstMs, lastMs []float64
	for _, r := range rs {
		bars = append(bars, r.startLast/r.startFirst)
		kbars = append(kbars, r.kernLast/r.kernFirst)
		firstMs, lastMs = append(firstMs, r.firstMs...), append(lastMs, r.lastMs...)
	}
	title := fmt.Sprintf("CreateEndpoint + Join, the first and the last %d of %d on one parent", chunk, total)
	part.AddSeries(benchres.Series{Chart: "part6-starts", Title: title, Kind: "dist", Label: fmt.Sprintf("first %d", chunk), Unit: "ms", Value: firstMs})
	part.AddSeries(benchres.Series{Chart: "part6-starts", Title: title, Kind: "dist", Label: fmt.Sprintf("last %d", chunk), Unit: "ms", Value: lastMs})
	part.Notes = append(part.Notes, fmt.Sprintf("%d rounds; each figure the median of the rounds; last÷first of CreateEndpoint+Join per round: %v; of the bare create (the kernel's floor): %v", len(rs), roundTo(bars, 2), roundTo(kbars, 2)),
		fmt.Sprintf("CreateEndpoint+Join p50 parts, first %d: netlink %.3f ms, commits %.3f ms; last %d: netlink %.3f ms, commits %.3f ms", chunk,
			med(func(r round) float64 { return r.parts[0] }), med(func(r round) float64 { return r.parts[1] }), chunk,
			med(func(r round) float64 { return r.parts[2] }), med(func(r round) float64 { return r.parts[3] })))
	writePart(t, part, began)
}

// kernelCreates is part 6's floor: total macvlan links created and marked on
// one parent with the link layer alone, in a lab namespace of their own, as
// Join creates an endpoint's link; it returns the p50 in ms of the first and
// the last chunk. The links are gone when it returns: deleting their parent
// takes them all in one batch, so that no kernel work of the floor's is left
// to run while the plugin is measured.
func kernelCreates(t *testing.T, total, chunk int) (first, last float64) {
	t.Helper()
	lab := linktest.New(t)
	lab.Veth(t, "eth0", 0)
	h := lab.Handle()
	d := make([]time.Duration, 0, total)
	for i := range total {
		ep := hexID(fmt.Sprintf("part6-kernel-%d", i))
		spec := link.MacvlanSpec{Name: fmt.Sprintf("mvsk%d", i), Parent: "eth0",
			MAC: net.HardwareAddr{0x02, 0x42, 0x0a, 0x80, byte(i >> 8), byte(i)}, Mark: link.EndpointMark(ep)}
		s := time.Now()
		if err := h.AddMacvlan(spec); err != nil {
			t.Fatalf("bare create %d: %v", i, err)
		}
		d = append(d, time.Since(s))
	}
	if err := h.Delete("eth0"); err != nil {
		t.Fatalf("delete the floor's parent and its macvlans: %v", err)
	}
	lab.Destroy(t)
	return benchres.Median(benchres.Ms(d[:chunk])), benchres.Median(benchres.Ms(d[len(d)-chunk:]))
}

// storeCycles is the store's floor in part 6: chunk cycles of the three
// commits an endpoint's life makes (CreateEndpoint puts its record, Join puts
// it again, DeleteEndpoint deletes it), each a durable bbolt transaction, on a
// bare file in a temporary folder on the same disk as the plugin's state:
// first with no other record, then with total records held. It returns the
// cycles' p50 in ms for both.
func storeCycles(t *testing.T, total, chunk int) (one, many float64) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(t.TempDir(), "floor.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bucket := []byte("endpoints")
	if err := db.Update(func(tx *bolt.Tx) error { _, err := tx.CreateBucket(bucket); return err }); err != nil {
		t.Fatal(err)
	}
	val := []byte(strings.Repeat("x", 350)) // an endpoint record's JSON is 300-400 bytes
	put := func(k, v []byte) {
		if err := db.Update(func(tx *bolt.Tx) error {
			if v == nil {
				return tx.Bucket(bucket).Delete(k)
			}
			return tx.Bucket(bucket).Put(k, v)
		}); err != nil {
			t.Fatal(err)
		}
	}
	cycles := func(tag string) float64 {
		d := make([]time.Duration, 0, chunk)
		for i := range chunk {
			k := []byte(hexID(fmt.Sprintf("part6-store-%s-%d", tag, i)))
			s := time.Now()
			put(k, val)
			put(k, append(val, 'y'))
			put(k, nil)
			d = append(d, time.Since(s))
		}
		return benchres.Median(benchres.Ms(d))
	}
	one = cycles("one")
	for i := range total {
		k := []byte(hexID(fmt.Sprintf("part6-store-held-%d", i)))
		put(k, val)
		put(k, append(val, 'y'))
	}
	return one, cycles("many")
}

// netCycles runs count endpoint cycles spread over the networks ids (round
// robin) and returns their p50 in ms.
func netCycles(t *testing.T, pl *bench, ids []string, count, seed int) float64 {
	t.Helper()
	var d []time.Duration
	for i := range count {
		k := i % len(ids)
		// Network k owns 10.(1+k/250).(k%250).0/24.
		addr := fmt.Sprintf("10.%d.%d.%d/24", 1+k/250, k%250, 10+i/len(ids))
		ep := hexID(fmt.Sprintf("part6-netcycle-%d-%d", seed, i))
		s := time.Now()
		pl.post(t, "CreateEndpoint", mustJSON(t, wiretest.CreateEndpoint(ids[k], ep, addr, "", "")))
		pl.post(t, "Join", mustJSON(t, wiretest.Join(ids[k], ep)))
		pl.post(t, "Leave", mustJSON(t, wiretest.Leave(ids[k], ep)))
		pl.post(t, "DeleteEndpoint", mustJSON(t, wiretest.DeleteEndpoint(ids[k], ep)))
		d = append(d, time.Since(s))
	}
	return benchres.Median(benchres.Ms(d))
}

func roundTo(v []float64, digits int) []float64 {
	p := math.Pow(10, float64(digits))
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = math.Round(x*p) / p
	}
	return out
}

// TestBenchTeardown is part 7: 100 joined endpoints on one node deleted at
// once (a service scaled down: each container's Leave and DeleteEndpoint,
// all 100 sent together), timed until the last host link is gone from the
// namespace, polled every millisecond. The peer is the same with each link
// deleted one by one, inside its DeleteEndpoint (what a driver without the
// reaper does: one kernel unregister, one RCU grace period, per link).
// Rounds alternate which goes first.
func TestBenchTeardown(t *testing.T) {
	mode := benchMode(t)
	began := time.Now()
	rounds, n := mode.Rounds(3), mode.Pick(100, 10)
	variants := []struct {
		label string
		wrap  func(*link.Handle) driver.LinkLayer
	}{
		{"group delete", nil},
		{"one by one", func(h *link.Handle) driver.LinkLayer { return syncDelete{h} }},
	}
	gone := make([][]float64, len(variants))
	answered := make([][]float64, len(variants))
	for r := range rounds {
		for k := range variants {
			idx := (k + r) % len(variants)
			v := variants[idx]
			t.Run(fmt.Sprintf("round%d/%s", r+1, v.label), func(t *testing.T) {
				pl := newBench(t, benchOpts{reapDelay: driver.DefaultReapDelay, wrap: v.wrap})
				netID := swarmID("part7")
				pl.ok(t, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.128.0.0/9", "10.128.0.1/9")))
				bodies := cycleBodies(t, netID, fmt.Sprintf("teardown-%d", r), 0, n)
				for _, c := range bodies {
					pl.post(t, "CreateEndpoint", c.create)
					pl.post(t, "Join", c.join)
				}
				if got := len(pl.mvsLinks(t)); got != n {
					t.Fatalf("%d host links before the teardown, want %d", got, n)
				}
				var wg sync.WaitGroup
				release := make(chan struct{})
				var mu sync.Mutex
				var last time.Duration
				start := time.Now()
				for _, c := range bodies {
					wg.Go(func() {
						<-release
						// Not post: t.Fatal must not be called from
						// another goroutine.
						for _, r := range []struct {
							method string
							body   []byte
						}{{"Leave", c.leave}, {"DeleteEndpoint", c.del}} {
							if status, raw, err := pl.do(r.method, r.body); err != nil || status != http.StatusOK {
								t.Errorf("%s: status %d %s %v", r.method, status, raw, err)
							}
						}
						d := time.Since(start)
						mu.Lock()
						last = max(last, d)
						mu.Unlock()
					})
				}
				start = time.Now()
				close(release)
				var goneAt time.Duration
				for deadline := start.Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
					if len(pl.mvsLinks(t)) == 0 {
						goneAt = time.Since(start)
						break
					}
				}
				wg.Wait()
				if goneAt == 0 {
					t.Fatalf("%s: host links still there 30 s after the teardown", v.label)
				}
				gone[idx] = append(gone[idx], ms(goneAt))
				answered[idx] = append(answered[idx], ms(last))
				t.Logf("%s: %d links gone after %.1f ms; all DeleteEndpoint answered after %.1f ms", v.label, n, ms(goneAt), ms(last))
				pl.wantNoMvsLinks(t)
			})
		}
	}
	if t.Failed() {
		return
	}
	part := benchres.Part{N: 7, Title: fmt.Sprintf("teardown of %d endpoints", n), Mode: mode}
	part.Add(benchres.Figure{Name: fmt.Sprintf("%d endpoints deleted at once: until the links are gone", n), Label: "group delete",
		Value: benchres.Median(gone[0]), Unit: "ms", Peer: "one by one", PeerValue: benchres.Median(gone[1]), Samples: rounds,
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 100}})
	part.Add(benchres.Figure{Name: fmt.Sprintf("%d endpoints deleted at once: until every DeleteEndpoint is answered", n), Label: "group delete",
		Value: benchres.Median(answered[0]), Unit: "ms", Peer: "one by one", PeerValue: benchres.Median(answered[1]), Samples: rounds})
	for k, v := range variants {
		part.AddSeries(benchres.Series{Chart: "part7-teardown", Title: fmt.Sprintf("%d endpoints deleted at once: until the links are gone", n), Kind: "bar",
			Label: v.label, Unit: "ms", Value: []float64{benchres.Median(gone[k])}})
	}
	part.Notes = append(part.Notes, fmt.Sprintf("links gone per round (ms): group delete %v, one by one %v", roundTo(gone[0], 1), roundTo(gone[1], 1)))
	writePart(t, part, began)
}
