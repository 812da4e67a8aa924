package driver_test

// Benchmarks of the whole plugin: real socket, real handler, real netlink in
// a lab namespace, real state file. They report figures and never judge
// them; docs/benchmarks.md records a run and compares it with the targets.
//
//	go test -run '^$' -bench . -benchtime 2000x ./internal/driver/

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/driver"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// BenchmarkEndpointCycle is one container's network life as the engine
// drives it: CreateEndpoint, Join, Leave, DeleteEndpoint, with the reaper at
// its production delay (back to back, each Join reuses the link the last
// DeleteEndpoint retired; links nobody takes are deleted in batches). ns/op
// includes a final Flush, so the deletions the reaper still owed are paid
// for; p50 and p99 are the four requests as the engine waits for them.
func BenchmarkEndpointCycle(b *testing.B) {
	benchCycle(b, benchOpts{reapDelay: driver.DefaultReapDelay})
}

// BenchmarkEndpointCycleSyncDelete is the baseline: the same cycle with each
// link deleted by a kernel request of its own and no link reused (what the
// retire, reuse and group-delete design avoids). The deletes run in the
// reaper's goroutine, so ns/op (which includes the final Flush) shows their
// cost rather than p50.
func BenchmarkEndpointCycleSyncDelete(b *testing.B) {
	benchCycle(b, benchOpts{
		reapDelay: time.Hour, // the reaper never has anything to do
		wrap:      func(h *link.Handle) driver.LinkLayer { return syncDelete{h} },
	})
}

// syncDelete deletes each link on its own when the reaper retires it, and
// never lets a Join reuse one: a driver without group deletes and reuse.
type syncDelete struct{ driver.LinkLayer }

func (s syncDelete) Retire(name string, _ uint32) error { return s.Delete(name) }

func (s syncDelete) Rearm(name, _ string, _ link.MacvlanSpec) error {
	return fmt.Errorf("baseline: reuse %q: %w", name, link.ErrNotReusable)
}

func benchCycle(b *testing.B, o benchOpts) {
	pl := newBench(b, o)
	netID := swarmID("bench")
	pl.ok(b, "CreateNetwork", wiretest.CreateNetwork(netID, onEth0(), wiretest.Pool("10.128.0.0/9", "10.128.0.1/9")))

	// Ids and addresses are made before the clock starts; each iteration is
	// a new container with a new endpoint id, as with the engine.
	type cycle struct{ create, join, leave, del []byte }
	cycles := make([]cycle, b.N)
	base := netip.MustParseAddr("10.128.0.10").As4()
	for i := range cycles {
		ep := hexID(fmt.Sprintf("bench-%d", i))
		a := base
		n := uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) + uint32(i)
		a[1], a[2], a[3] = byte(n>>16), byte(n>>8), byte(n)
		addr := netip.PrefixFrom(netip.AddrFrom4(a), 9).String()
		cycles[i] = cycle{
			create: mustJSON(b, wiretest.CreateEndpoint(netID, ep, addr, "", "")),
			join:   mustJSON(b, wiretest.Join(netID, ep)),
			leave:  mustJSON(b, wiretest.Leave(netID, ep)),
			del:    mustJSON(b, wiretest.DeleteEndpoint(netID, ep)),
		}
	}
	post := func(method string, body []byte) {
		status, raw, err := pl.do(method, body)
		if err != nil || status != http.StatusOK {
			b.Fatalf("%s: status %d %s %v", method, status, raw, err)
		}
	}

	durs := make([]time.Duration, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i, c := range cycles {
		start := time.Now()
		post("CreateEndpoint", c.create)
		post("Join", c.join)
		post("Leave", c.leave)
		post("DeleteEndpoint", c.del)
		durs[i] = time.Since(start)
	}
	pl.d.Flush()
	b.StopTimer()

	if left := pl.mvsLinks(b); len(left) > 0 {
		b.Fatalf("%d host links left after the run", len(left))
	}
	slices.Sort(durs)
	b.ReportMetric(ms(percentile(durs, 50)), "p50-ms")
	b.ReportMetric(ms(percentile(durs, 99)), "p99-ms")
}

// BenchmarkRestore1000 is driver.New, loading and reconciling a state file
// of one network and 1000 endpoints, the start-up a plugin restart on a busy
// node pays. host-links=0 is a restart while the containers run (their links
// are in their own namespaces); host-links=1000 has every link in the host
// namespace, so reconciling walks 1000 more links. RSS-MiB is the whole test
// process's resident set after the restore, heap-MiB the Go heap in use, and
// state-KiB the heap the restored driver keeps.
func BenchmarkRestore1000(b *testing.B) {
	for _, hostLinks := range []bool{false, true} {
		name := "host-links=0"
		if hostLinks {
			name = "host-links=1000"
		}
		b.Run(name, func(b *testing.B) { benchRestore(b, 1000, hostLinks) })
	}
}

func benchRestore(b *testing.B, endpoints int, hostLinks bool) {
	pl := newBench(b, benchOpts{noStart: true, reapDelay: time.Hour})
	st, err := store.Open(pl.dir)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	netID := swarmID("restore")
	n := &model.Network{ID: netID, ParentSpec: "eth0", Parent: "eth0", Mode: link.ModeBridge,
		IPv4:    []model.Pool{{Subnet: netip.MustParsePrefix("10.128.0.0/9"), Gateway: netip.MustParsePrefix("10.128.0.1/9")}},
		Options: map[string]string{"parent": "eth0"}, Created: time.Now().UTC()}
	eps := make([]*model.Endpoint, endpoints)
	for i := range eps {
		id := hexID(fmt.Sprintf("restore-%d", i))
		a := netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)})
		mac := net.HardwareAddr{0x02, 0x42, 10, 128 + byte(i>>16), byte(i >> 8), byte(i)}
		eps[i] = &model.Endpoint{ID: id, NetworkID: netID, IPv4: netip.PrefixFrom(a, 9), MAC: mac, Link: hostLink(id), Created: time.Now().UTC()}
		if hostLinks {
			if err := pl.lab.Handle().AddMacvlan(link.MacvlanSpec{Name: eps[i].Link, Parent: "eth0", Mark: link.EndpointMark(id)}); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := st.Apply(store.Change{PutNetworks: []*model.Network{n}, PutEndpoints: eps}); err != nil {
		b.Fatal(err)
	}
	cfg := driver.Config{Links: pl.links, Store: st, ReapDelay: time.Hour, Log: testLog()}
	eps = nil // so that state-KiB counts only what the driver keeps

	// Twice: the first collection only moves sync.Pool contents aside.
	var before runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	var d *driver.Driver
	b.ResetTimer()
	for range b.N {
		if d != nil {
			// Closing (it lists the links once more for pending
			// deletions) is not part of a restore.
			b.StopTimer()
			d.Close()
			b.StartTimer()
		}
		if d, err = driver.New(cfg); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()

	if s := d.Snapshot(); len(s.Endpoints) != endpoints {
		b.Fatalf("restored %d endpoints, want %d", len(s.Endpoints), endpoints)
	}
	var after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(ms(b.Elapsed()/time.Duration(b.N)), "ms/restore")
	b.ReportMetric(float64(vmRSS(b))/(1<<20), "RSS-MiB")
	b.ReportMetric(float64(after.HeapInuse)/(1<<20), "heap-MiB")
	b.ReportMetric((float64(after.HeapAlloc)-float64(before.HeapAlloc))/(1<<10), "state-KiB")
	runtime.KeepAlive(d)
	d.Close()
	if hostLinks {
		// The links belong to endpoints: the restore must have kept them.
		if got := len(pl.mvsLinks(b)); got != endpoints {
			b.Fatalf("%d host links after restore, want %d", got, endpoints)
		}
	}
}

// vmRSS is this process's resident set in bytes, from /proc/self/status.
func vmRSS(tb testing.TB) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				tb.Fatalf("VmRSS line %q: %v", sc.Text(), err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p+99)/100 - 1
	return sorted[max(i, 0)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}
