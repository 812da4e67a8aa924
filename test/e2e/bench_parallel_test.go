//go:build e2e

package e2e

// TestBenchParallelStarts measures many containers started at once through
// the plugin against Docker's built-in macvlan driver on the same parent, with
// the plugin's state file on a real disk (issue 9, point 5, "the lock and the
// disk"). The driver holds its one mutex across every bbolt commit, and a
// commit waits for the disk (fdatasync); under parallel starts every
// CreateEndpoint (and every DeleteEndpoint) queues behind the commits before
// it. This bench shows whether that queue is visible next to what the engine
// itself costs.
//
//	MVS_BENCH=1 go test -tags e2e -count=1 -v -timeout 30m -run '^TestBenchParallelStarts$' ./test/e2e/
//	make bench-parallel
//
// Settings: MVS_BENCH_ROUNDS (default 5), MVS_BENCH_PARALLEL (containers
// started at once, default 50), MVS_BENCH_SERIAL (containers started one at
// a time per round and driver, for the "alone" figures, default 5),
// MVS_BENCH_STACKS=1 (sample the plugin's kernel stacks every millisecond
// during its batches and print where its threads waited in the kernel: the
// disk (fsync) or rtnetlink, by request kind; see bpWaitKind. The sampling
// costs CPU: take the timing figures from a run without it).
//
// It prints figures and never asserts a time. It fails only when the bench
// itself cannot run (state file on tmpfs, links left behind).

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"

	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// bpDriver is one side of the comparison: a network on the node's LAN link.
type bpDriver struct {
	label   string // "plugin", "built-in" or "none" (the engine's floor: no network set-up)
	network string
	plugin  bool // requests show up in the plugin's log
}

// bpBatch is what one batch of container starts and their removal cost.
type bpBatch struct {
	total     time.Duration   // first start issued → last container running
	lat       []time.Duration // per container: create + start (what `docker run -d` waits for)
	failures  []string
	removal   time.Duration              // all force-removes issued → all returned
	linksGone time.Duration              // all force-removes issued → no macvlan link left on the node
	reqs      map[string][]time.Duration // the plugin's time per request, by method
	held      map[string][]time.Duration // of that, the estimated time holding the driver's lock
	// MVS_BENCH_STACKS: kernel-stack samples of the plugin's threads by
	// kind, while the containers start and while they are removed.
	waits [2]map[string]int
}

// bpStats pools batches of one driver and one kind (serial or parallel).
type bpStats struct {
	totals, removals, linksGone []time.Duration
	lat                         []time.Duration
	failures                    []string
	reqs, held                  map[string][]time.Duration
	waits                       [2]map[string]int
}

func (s *bpStats) add(b bpBatch) {
	s.totals = append(s.totals, b.total)
	s.removals = append(s.removals, b.removal)
	s.linksGone = append(s.linksGone, b.linksGone)
	s.lat = append(s.lat, b.lat...)
	s.failures = append(s.failures, b.failures...)
	if s.reqs == nil {
		s.reqs, s.held = map[string][]time.Duration{}, map[string][]time.Duration{}
	}
	for m, ds := range b.reqs {
		s.reqs[m] = append(s.reqs[m], ds...)
	}
	for m, ds := range b.held {
		s.held[m] = append(s.held[m], ds...)
	}
	for phase, w := range b.waits {
		for k, c := range w {
			if s.waits[phase] == nil {
				s.waits[phase] = map[string]int{}
			}
			s.waits[phase][k] += c
		}
	}
}

// bpMethods are the plugin requests whose time in the plugin this bench
// reports: the two of a container start, the two of its removal.
var bpMethods = []string{"CreateEndpoint", "Join", "Leave", "DeleteEndpoint"}

func TestBenchParallelStarts(t *testing.T) {
	mode := benchres.CurrentMode()
	if mode == benchres.Off {
		t.Skip("benchmark, not part of the suite: set MVS_BENCH=1 to run it (or `make bench-parallel`, `make bench`); " +
			"it starts 50 containers at once per round for some minutes")
	}
	began := time.Now()
	rounds := benchres.EnvInt(t.Fatalf, "MVS_BENCH_ROUNDS", mode.Pick(5, 1), 0)
	par := benchres.EnvInt(t.Fatalf, "MVS_BENCH_PARALLEL", mode.Pick(50, 10), 0)
	serial := benchres.EnvInt(t.Fatalf, "MVS_BENCH_SERIAL", mode.Pick(5, 2), 0)
	sampleStacks := os.Getenv("MVS_BENCH_STACKS") == "1"
	if par > 200 || serial > 200 {
		t.Fatalf("MVS_BENCH_PARALLEL and MVS_BENCH_SERIAL must be at most 200 (one /24 per driver)")
	}

	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	img := lab.BusyboxImage(t, n)
	// SCOPE=local: engine 20.10 refuses global-scope plugin networks outside
	// swarm. LOG_LEVEL=debug: the daemon then logs each request's duration.
	n.InstallPluginFromDir(t, pluginRef, pluginDir, "SCOPE=local", "LOG_LEVEL=debug")

	drivers := []bpDriver{
		{label: "plugin", network: "bp-plugin", plugin: true},
		{label: "built-in", network: "bp-builtin"},
		{label: "none", network: "none"},
	}
	n.Docker(t, "network", "create", "-d", pluginRef, "--subnet", "10.97.1.0/24", "--gateway", "10.97.1.1",
		"-o", "parent="+n.LANLink, drivers[0].network)
	n.Docker(t, "network", "create", "-d", "macvlan", "--subnet", "10.97.2.0/24", "--gateway", "10.97.2.1",
		"-o", "parent="+n.LANLink, drivers[1].network)
	t.Cleanup(func() {
		_, _, _ = n.DockerErr("network", "rm", drivers[0].network, drivers[1].network)
	})

	bpDescribe(t, n)
	pluginPid := 0
	if sampleStacks {
		if pluginPid, _ = lcPluginPid(t, n, pluginRef); pluginPid == 0 {
			t.Fatalf("MVS_BENCH_STACKS: no process of the plugin found")
		}
		t.Logf("MVS_BENCH_STACKS: sampling the kernel stacks of plugin process %d during its batches", pluginPid)
	}

	stats := map[string]map[bool]*bpStats{} // label → parallel? → stats
	for _, d := range drivers {
		stats[d.label] = map[bool]*bpStats{false: {}, true: {}}
	}
	for r := 1; r <= rounds; r++ {
		// Each driver goes first in turn.
		k := (r - 1) % len(drivers)
		for _, d := range append(slices.Clone(drivers[k:]), drivers[:k]...) {
			for _, parallel := range []bool{false, true} {
				count, kind := serial, "serial"
				if parallel {
					count, kind = par, "parallel"
				}
				if count == 0 || (!parallel && d.network == "none") {
					// The floor is only needed for the batches at once.
					continue
				}
				var sample func() (stop func() map[string]int)
				if d.plugin && pluginPid > 0 {
					sample = func() func() map[string]int { return bpSampleStacks(pluginPid) }
				}
				b := bpRunBatch(t, n, img, d, fmt.Sprintf("bp-r%d-%s-%s", r, d.label, kind), count, parallel, sample)
				stats[d.label][parallel].add(b)
				t.Logf("round %d %-8s %-8s x%-3d total %7s  p50 %7s  p99 %7s  failures %d  removal %7s  links gone %7s%s",
					r, d.label, kind, count, bpMs(b.total), bpMs(bpPct(b.lat, 50)), bpMs(bpPct(b.lat, 99)),
					len(b.failures), bpMs(b.removal), bpMs(b.linksGone), bpReqSummary(b.reqs)+bpWaitSummary("start", b.waits[0])+bpWaitSummary("removal", b.waits[1]))
			}
		}
	}

	bpReport(t, stats, rounds, par, serial)
	path, err := benchres.Write(bpPart(stats, par, n.Docker(t, "version", "-f", "{{.Server.Version}}"), time.Since(began)))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("part 2 of make bench written to %s", path)
}

// bpPart is part 2 of `make bench`: the parallel batches, plugin against the
// built-in driver, medians over rounds (totals) or pooled over every round's
// containers (p50, p99).
func bpPart(stats map[string]map[bool]*bpStats, par int, engine string, took time.Duration) benchres.Part {
	p, b := stats["plugin"][true], stats["built-in"][true]
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	part := benchres.Part{N: 2, Title: fmt.Sprintf("parallel starts (%d at once, state on disk)", par), Engine: engine, Seconds: took.Seconds()}
	part.Add(benchres.Figure{Name: "total until all run", Label: "plugin", Value: ms(bpPct(p.totals, 50)) / 1000, Unit: "s",
		Peer: "built-in", PeerValue: ms(bpPct(b.totals, 50)) / 1000, Samples: len(p.totals),
		Paired: benchres.PairedRatios(benchres.Ms(p.totals), benchres.Ms(b.totals)),
		Target: &benchres.Target{Of: "ratio", Op: "<=", Limit: 1.0}})
	// The engine's floor: the same batch with --network none. What each
	// driver adds above it is its networking cost under load.
	f := stats["none"][true]
	above := func(s *bpStats) []float64 {
		var v []float64
		for i, d := range s.totals {
			if i < len(f.totals) {
				v = append(v, ms(d-f.totals[i]))
			}
		}
		return v
	}
	part.Add(benchres.Figure{Name: "total until all run, no networking (--network none)", Label: "none", Value: ms(bpPct(f.totals, 50)) / 1000, Unit: "s",
		Samples: len(f.totals), Note: "the engine's floor: the same batch of containers without any network set-up, interleaved with the two"})
	part.Add(benchres.Figure{Name: "total until all run, above the none batch", Label: "plugin", Value: benchres.Median(above(p)) / 1000, Unit: "s",
		Peer: "built-in", PeerValue: benchres.Median(above(b)) / 1000, Samples: len(p.totals),
		Paired: benchres.PairedRatios(above(p), above(b)),
		Note:   fmt.Sprintf("each round's total less that round's --network none total: the networking cost of %d starts at once; no target", par)})
	part.Add(benchres.Figure{Name: "p50 start", Label: "plugin", Value: ms(bpPct(p.lat, 50)), Unit: "ms",
		Peer: "built-in", PeerValue: ms(bpPct(b.lat, 50)), Samples: len(p.lat)})
	part.Add(benchres.Figure{Name: "p99 start", Label: "plugin", Value: ms(bpPct(p.lat, 99)), Unit: "ms",
		Peer: "built-in", PeerValue: ms(bpPct(b.lat, 99)), Samples: len(p.lat)})
	failNote := ""
	if len(p.failures) > 0 {
		failNote = strings.Join(bpDistinct(p.failures, 3), "; ")
	}
	part.Add(benchres.Figure{Name: "failed starts", Label: "plugin", Value: float64(len(p.failures)), Unit: "",
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 0}, Note: failNote})
	part.Add(benchres.Figure{Name: "failed starts", Label: "built-in", Value: float64(len(b.failures)), Unit: ""})
	part.Add(benchres.Figure{Name: "removal until links gone", Label: "plugin", Value: ms(bpPct(p.linksGone, 50)) / 1000, Unit: "s",
		Peer: "built-in", PeerValue: ms(bpPct(b.linksGone, 50)) / 1000, Samples: len(p.linksGone),
		Paired: benchres.PairedRatios(benchres.Ms(p.linksGone), benchres.Ms(b.linksGone))})
	for _, side := range []struct {
		label string
		s     *bpStats
	}{{"plugin", p}, {"built-in", b}} {
		part.AddSeries(benchres.Series{Chart: "parallel-starts", Title: fmt.Sprintf("%d containers started at once: create + start of each", par),
			Kind: "dist", Label: side.label, Unit: "ms", Value: benchres.Ms(side.s.lat)})
	}
	return part
}

// bpRunBatch starts count containers on d's network, all at once or one
// after the other, then force-removes them the same way and waits until the
// node has no macvlan link left. A non-nil sample is started for each of
// the two phases.
func bpRunBatch(t *testing.T, n *lab.Node, img string, d bpDriver, prefix string, count int, parallel bool,
	sample func() (stop func() map[string]int)) bpBatch {
	t.Helper()
	phase := func() func() map[string]int {
		if sample == nil {
			return func() map[string]int { return nil }
		}
		return sample()
	}
	cli := n.Client()
	mark := len(n.Log(t))
	names := make([]string, count)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", prefix, i)
	}

	lat := make([]time.Duration, count)
	errs := make([]error, count)
	startOne := func(i int) {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		began := time.Now()
		c, err := cli.ContainerCreate(ctx,
			&container.Config{Image: img, Cmd: lab.Sleeper},
			&container.HostConfig{NetworkMode: container.NetworkMode(d.network)},
			nil, nil, names[i])
		if err == nil {
			err = cli.ContainerStart(ctx, c.ID, container.StartOptions{})
		}
		lat[i], errs[i] = time.Since(began), err
	}
	stopStart := phase()
	began := time.Now()
	if parallel {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := range count {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				startOne(i)
			}()
		}
		began = time.Now()
		close(gate)
		wg.Wait()
	} else {
		for i := range count {
			startOne(i)
		}
	}
	b := bpBatch{total: time.Since(began)}
	b.waits[0] = stopStart()
	for i, err := range errs {
		if err != nil {
			b.failures = append(b.failures, fmt.Sprintf("%s: %v", names[i], err))
		} else {
			b.lat = append(b.lat, lat[i])
		}
	}
	// A start that returned is a running container; check that none died.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	running := 0
	if cs, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: filters.NewArgs(filters.Arg("name", prefix+"-"))}); err == nil {
		for _, c := range cs {
			if c.State == "running" {
				running++
			}
		}
	} else {
		t.Errorf("container list: %v", err)
	}
	if ok := count - len(b.failures); running < ok {
		b.failures = append(b.failures, fmt.Sprintf("%d of %d started containers not running", ok-running, ok))
	}
	// Removal, the same way: all at once, or one after the other.
	rmCtx, rmCancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer rmCancel()
	rmErrs := make([]error, count)
	removeOne := func(i int) {
		err := cli.ContainerRemove(rmCtx, names[i], container.RemoveOptions{Force: true})
		if err != nil && errs[i] == nil {
			rmErrs[i] = err
		}
	}
	stopRemoval := phase()
	rmBegan := time.Now()
	if parallel {
		lab.Parallel(count, removeOne)
	} else {
		for i := range count {
			removeOne(i)
		}
	}
	b.removal = time.Since(rmBegan)
	for i, err := range rmErrs {
		if err != nil {
			t.Errorf("remove %s: %v", names[i], err)
		}
	}
	lab.Eventually(t, time.Minute, 10*time.Millisecond, "no macvlan link left on "+n.Name, func() error {
		if left := bpMacvlanLinks(t, n); len(left) > 0 {
			return fmt.Errorf("%d left: %v", len(left), left)
		}
		return nil
	})
	b.linksGone = time.Since(rmBegan)
	b.waits[1] = stopRemoval()
	b.reqs, b.held = bpPluginRequests(n.Log(t)[mark:])
	return b
}

// bpMacvlanLinks lists the macvlan links in the node's namespace: the
// driver's before they move into a container, after they come back and
// while the reaper has them, and the built-in driver's likewise.
func bpMacvlanLinks(t *testing.T, n *lab.Node) []string {
	t.Helper()
	var names []string
	for _, l := range nbLinks(t, n.NetNSPath()) {
		if l.LinkInfo.Kind == "macvlan" {
			names = append(names, l.Name)
		}
	}
	return names
}

// bpResponseRE matches the daemon's debug line for an answered request, as
// the engine forwards plugin output into its log:
//
//	… msg="time=2026-…T02:06:19.022Z level=DEBUG msg=response method=Join net=… ep=… dur=1.234ms" plugin=…
//
// dur runs from the request's arrival to its answer, waiting for the
// driver's lock included; time is when it was answered (milliseconds).
var bpResponseRE = regexp.MustCompile(`time=(\S+) level=DEBUG msg=response method=(\w+)\b.*?\bdur=([0-9][0-9.]*(?:ns|us|µs|ms|s))`)

// bpLocking are the requests that hold the driver's one mutex for their
// whole call (internal/driver: CreateNetwork, DeleteNetwork, CreateEndpoint,
// EndpointOperInfo, Join, DeleteEndpoint); Leave and the connectivity calls
// take no lock.
var bpLocking = map[string]bool{"CreateNetwork": true, "DeleteNetwork": true, "CreateEndpoint": true,
	"EndpointOperInfo": true, "Join": true, "DeleteEndpoint": true}

// bpPluginRequests reads the plugin's per-request times from a piece of the
// dockerd log. For requests that take the lock it also estimates how long
// each held it: requests serialised by one lock form a queue, so a request
// holds the lock from max(its arrival, the previous locking request's
// answer) to its own answer. The answer times have millisecond resolution,
// so the estimate is good to about a millisecond: enough to tell a queue
// from the work done in it.
func bpPluginRequests(log string) (dur, held map[string][]time.Duration) {
	type req struct {
		method  string
		arrived time.Time
		done    time.Time
	}
	var locking []req
	dur, held = map[string][]time.Duration{}, map[string][]time.Duration{}
	for _, m := range bpResponseRE.FindAllStringSubmatch(log, -1) {
		d, err := time.ParseDuration(m[3])
		if err != nil {
			continue
		}
		dur[m[2]] = append(dur[m[2]], d)
		done, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil || !bpLocking[m[2]] {
			continue
		}
		// The log time is truncated to the millisecond; the answer came
		// within that millisecond.
		done = done.Add(500 * time.Microsecond)
		locking = append(locking, req{m[2], done.Add(-d), done})
	}
	slices.SortStableFunc(locking, func(a, b req) int { return a.done.Compare(b.done) })
	var prev time.Time
	for _, r := range locking {
		from := r.arrived
		if prev.After(from) {
			from = prev
		}
		held[r.method] = append(held[r.method], max(0, r.done.Sub(from)))
		prev = r.done
	}
	return dur, held
}

// bpSampleStacks reads the kernel stack of every thread of process pid
// each millisecond until the returned stop is called, and counts the
// samples of threads blocked in the kernel by what they wait for (see
// bpWaitKind). Idle threads (futex, epoll, sleep) are not counted. One
// sample ≈ 1 ms of one thread.
func bpSampleStacks(pid int) (stop func() map[string]int) {
	quit, done := make(chan struct{}), make(chan map[string]int)
	go func() {
		counts := map[string]int{}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				done <- counts
				return
			case <-tick.C:
			}
			tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
			for _, task := range tasks {
				b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stack", pid, task.Name()))
				if err != nil {
					continue
				}
				if k := bpWaitKind(string(b)); k != "" {
					counts[k]++
				}
			}
		}
	}()
	return func() map[string]int {
		close(quit)
		return <-done
	}
}

// bpWaitKinds are the kinds bpWaitKind tells apart, in report order.
var bpWaitKinds = []string{"fsync", "rtnl-wait", "newlink", "setlink", "dellink", "dump", "other"}

// bpWaitKind classifies one /proc/<pid>/task/<tid>/stack (innermost frame
// first; the kernel leaves scheduler and mutex frames out, so the first
// frame is where the thread blocked):
//
//   - fsync: in fsync/fdatasync, a commit of the state file (driver lock held);
//   - rtnl-wait: in rtnetlink_rcv_msg, i.e. waiting for the RTNL lock
//     before a netlink link request runs (the driver's or the reaper's);
//   - newlink: inside RTM_NEWLINK: Join creating its link, or
//     DeleteEndpoint setting it down (netlink's LinkSetDown); lock held;
//   - setlink: inside RTM_SETLINK, DeleteEndpoint moving its link into the
//     retire group; lock held;
//   - dellink: inside RTM_DELLINK, the reaper's group delete (no driver lock);
//   - dump: a link dump, the reaper's list of links (no driver lock);
//   - other: anything else that is not idle; "" for an idle thread.
func bpWaitKind(stack string) string {
	if stack == "" || strings.Contains(stack, "futex_wait") || strings.Contains(stack, "do_epoll_wait") ||
		strings.Contains(stack, "hrtimer_nanosleep") {
		return ""
	}
	first := ""
	if f := strings.Fields(stack); len(f) >= 2 {
		first, _, _ = strings.Cut(f[1], "+")
	}
	switch {
	case strings.Contains(stack, "do_fsync"):
		return "fsync"
	case !strings.Contains(stack, "netlink_sendmsg") && !strings.Contains(stack, "netlink_recvmsg"):
		return "other"
	case strings.Contains(stack, "rtnl_dumpit"):
		return "dump"
	case strings.Contains(stack, "rtnl_newlink"):
		return "newlink"
	case strings.Contains(stack, "rtnl_setlink"):
		return "setlink"
	case strings.Contains(stack, "rtnl_dellink"):
		return "dellink"
	case first == "rtnetlink_rcv_msg":
		return "rtnl-wait"
	}
	return "other"
}

func bpWaitSummary(phase string, w map[string]int) string {
	if len(w) == 0 {
		return ""
	}
	var parts []string
	for _, k := range bpWaitKinds {
		parts = append(parts, fmt.Sprintf("%s %d", k, w[k]))
	}
	return "  [" + phase + ", kernel ms: " + strings.Join(parts, ", ") + "]"
}

// bpDescribe logs the machine, the engine, and where the plugin's state file
// lives, and fails when that is tmpfs: the bench is about a real disk.
func bpDescribe(t *testing.T, n *lab.Node) {
	t.Helper()
	id := n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", pluginRef)
	root := n.Docker(t, "info", "-f", "{{.DockerRootDir}}")
	mount := root + "/plugins/" + id + "/propagated-mount"
	state := mount + "/" + lcStateFile
	if _, err := os.Stat(state); err != nil {
		t.Fatalf("plugin state file: %v (the network exists, so the daemon should have written it)", err)
	}
	fm, err := exec.Command("findmnt", "-n", "-o", "TARGET,SOURCE,FSTYPE,OPTIONS", "-T", state).CombinedOutput()
	if err != nil {
		t.Fatalf("findmnt -T %s: %v: %s", state, err, fm)
	}
	fsType, err := exec.Command("stat", "-f", "-c", "%T", state).CombinedOutput()
	if err != nil {
		t.Fatalf("stat -f %s: %v: %s", state, err, fsType)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(state, &st); err != nil {
		t.Fatalf("statfs %s: %v", state, err)
	}
	const tmpfsMagic = 0x01021994
	t.Logf("plugin state file: %s", state)
	t.Logf("findmnt -T: %s", strings.TrimSpace(string(fm)))
	t.Logf("stat -f -c %%T: %s (f_type %#x)", strings.TrimSpace(string(fsType)), st.Type)
	if st.Type == tmpfsMagic || strings.Contains(string(fm), "tmpfs") {
		t.Fatalf("the plugin's state file is on tmpfs: this bench measures commits to a real disk; run it where /tmp is a disk")
	}
	t.Logf("engine %s, API %s; kernel %s; %s; %d CPUs; %s",
		n.Docker(t, "version", "-f", "{{.Server.Version}}"), n.Docker(t, "version", "-f", "{{.Server.APIVersion}}"),
		bpRead("/proc/sys/kernel/osrelease"), bpCPUModel(), bpNumCPU(), runtime.Version())

	// What one commit waits for: bbolt ends every write transaction with
	// two fdatasyncs (pages, then meta page). Probed on the same filesystem,
	// in a file of its own (the plugin's file is not touched).
	p50, p99 := bpFdatasyncProbe(t, n.Dir, 50)
	t.Logf("fdatasync of 4 KiB on that filesystem (%s, 50 tries): p50 %s, p99 %s", n.Dir, bpMs(p50), bpMs(p99))
}

func bpFdatasyncProbe(t *testing.T, dir string, tries int) (p50, p99 time.Duration) {
	t.Helper()
	f, err := os.CreateTemp(dir, "bp-fsync-probe-")
	if err != nil {
		t.Fatalf("fdatasync probe: %v", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for i := range tries {
		buf[0] = byte(i)
		began := time.Now()
		if _, err := f.WriteAt(buf, int64(i%8)*4096); err != nil {
			t.Fatalf("fdatasync probe: %v", err)
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			t.Fatalf("fdatasync probe: %v", err)
		}
		ds = append(ds, time.Since(began))
	}
	return bpPct(ds, 50), bpPct(ds, 99)
}

// bpReport prints the table of figures and the plugin's own request times.
func bpReport(t *testing.T, stats map[string]map[bool]*bpStats, rounds, par, serial int) {
	t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nParallel starts, %d round(s); total, removal and links gone are medians over rounds, p50/p99 pooled over all rounds' containers;\n"+
		"a batch's containers are removed (forced) the way they were started: all at once, or one by one\n\n", rounds)
	fmt.Fprintf(&sb, "| driver | batch | total (median) | p50 start | p99 start | failures | removal (median) | links gone (median) |\n")
	fmt.Fprintf(&sb, "|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, parallel := range []bool{true, false} {
		batch := fmt.Sprintf("%d at once", par)
		if !parallel {
			batch = fmt.Sprintf("%d one by one", serial)
		}
		for _, label := range []string{"plugin", "built-in", "none"} {
			s := stats[label][parallel]
			if len(s.totals) == 0 {
				continue
			}
			fmt.Fprintf(&sb, "| %s | %s | %s | %s | %s | %d | %s | %s |\n", label, batch,
				bpMs(bpPct(s.totals, 50)), bpMs(bpPct(s.lat, 50)), bpMs(bpPct(s.lat, 99)), len(s.failures),
				bpMs(bpPct(s.removals, 50)), bpMs(bpPct(s.linksGone, 50)))
		}
		p, b := stats["plugin"][parallel], stats["built-in"][parallel]
		if len(p.totals) > 0 && len(b.totals) > 0 {
			fmt.Fprintf(&sb, "| **plugin ÷ built-in** | %s | %s | %s | %s | | %s | %s |\n", batch,
				bpRatio(bpPct(p.totals, 50), bpPct(b.totals, 50)),
				bpRatio(bpPct(p.lat, 50), bpPct(b.lat, 50)), bpRatio(bpPct(p.lat, 99), bpPct(b.lat, 99)),
				bpRatio(bpPct(p.removals, 50), bpPct(b.removals, 50)), bpRatio(bpPct(p.linksGone, 50), bpPct(b.linksGone, 50)))
			// The two drivers of one round ran back to back, under the
			// same background load: their ratio is steadier than the
			// ratio of medians when the machine is shared.
			fmt.Fprintf(&sb, "| per-round ratio, median (min–max) | %s | %s | | | | %s | %s |\n", batch,
				bpRoundRatios(p.totals, b.totals), bpRoundRatios(p.removals, b.removals), bpRoundRatios(p.linksGone, b.linksGone))
		}
	}

	fmt.Fprintf(&sb, "\nTime inside the plugin per request (its debug log: arrival to answer, lock wait included;\n"+
		"held = estimated time holding the driver's lock, ±1 ms, from the answers' millisecond timestamps)\n\n")
	fmt.Fprintf(&sb, "| request | alone: n, p50, p99 | %d at once: n, p50, p99 | p50 ratio | held: alone p50; at once p50, max |\n|---|---:|---:|---:|---:|\n", par)
	alone, busy := stats["plugin"][false], stats["plugin"][true]
	for _, m := range bpMethods {
		a, p := alone.reqs[m], busy.reqs[m]
		heldCol := "no lock"
		if bpLocking[m] {
			heldCol = bpMs(bpPct(alone.held[m], 50)) + "; " + bpMs(bpPct(busy.held[m], 50)) + ", " + bpMs(bpPct(busy.held[m], 100))
		}
		fmt.Fprintf(&sb, "| %s | %d, %s, %s | %d, %s, %s | %s | %s |\n", m,
			len(a), bpMs(bpPct(a, 50)), bpMs(bpPct(a, 99)), len(p), bpMs(bpPct(p, 50)), bpMs(bpPct(p, 99)),
			bpRatio(bpPct(p, 50), bpPct(a, 50)), heldCol)
	}

	for _, parallel := range []bool{false, true} {
		if w := stats["plugin"][parallel].waits; len(w[0])+len(w[1]) > 0 {
			fmt.Fprintf(&sb, "\nplugin threads blocked in the kernel, %s batches, all rounds (1 ms stack samples, summed over threads):\n %s\n %s\n",
				map[bool]string{false: "one-by-one", true: "at-once"}[parallel], bpWaitSummary("start", w[0]), bpWaitSummary("removal", w[1]))
		}
	}

	for _, label := range []string{"plugin", "built-in"} {
		for _, parallel := range []bool{true, false} {
			if f := stats[label][parallel].failures; len(f) > 0 {
				fmt.Fprintf(&sb, "\nfailures of %s (parallel %v): %d\n  %s\n", label, parallel, len(f), strings.Join(bpDistinct(f, 10), "\n  "))
			}
		}
	}
	t.Log(sb.String())
}

// bpReqSummary is a round's plugin request times, for the per-round line.
func bpReqSummary(reqs map[string][]time.Duration) string {
	var parts []string
	for _, m := range bpMethods[:2] {
		if ds := reqs[m]; len(ds) > 0 {
			parts = append(parts, fmt.Sprintf("%s p50 %s p99 %s", m, bpMs(bpPct(ds, 50)), bpMs(bpPct(ds, 99))))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "  [in plugin: " + strings.Join(parts, ", ") + "]"
}

// bpPct is the nearest-rank percentile; -1 when there are no samples.
func bpPct(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return -1
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func bpMs(d time.Duration) string {
	switch {
	case d < 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
}

func bpRatio(a, b time.Duration) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}

// bpRoundRatios is the median, min and max over rounds of p[i]/b[i].
func bpRoundRatios(p, b []time.Duration) string {
	var rs []float64
	for i := range min(len(p), len(b)) {
		if b[i] > 0 {
			rs = append(rs, float64(p[i])/float64(b[i]))
		}
	}
	if len(rs) == 0 {
		return "–"
	}
	slices.Sort(rs)
	return fmt.Sprintf("%.2f× (%.2f–%.2f)", rs[(len(rs)-1)/2], rs[0], rs[len(rs)-1])
}

// bpDistinct lists distinct messages with their counts, at most limit.
func bpDistinct(msgs []string, limit int) []string {
	counts := map[string]int{}
	var order []string
	for _, m := range msgs {
		// Container names differ; the rest of the message is what matters.
		_, rest, ok := strings.Cut(m, ": ")
		if !ok {
			rest = m
		}
		if counts[rest] == 0 {
			order = append(order, rest)
		}
		counts[rest]++
	}
	var out []string
	for _, m := range order[:min(limit, len(order))] {
		out = append(out, fmt.Sprintf("%d× %s", counts[m], m))
	}
	return out
}

func bpRead(path string) string {
	b, _ := os.ReadFile(path)
	return strings.TrimSpace(string(b))
}

func bpCPUModel() string {
	for _, line := range strings.Split(bpRead("/proc/cpuinfo"), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func bpNumCPU() int {
	n := 0
	for _, line := range strings.Split(bpRead("/proc/cpuinfo"), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return n
}
