//go:build e2e

package e2e

// TestBenchSwarm is part 3 of `make bench` (issue 11): on a swarm of two
// engines (one manager, one worker), a dnsrr service scaled 0 → N → 0 on a
// network of the plugin and, side by side, the same service on an overlay
// network and on the engine's own macvlan driver in swarm scope (a
// config-only network on each node, `--config-from` on the manager); then
// `docker run --rm … true` on each of the three networks, all attachable.
// The overlay is the peer the targets name; the built-in macvlan has no
// target: the same kind of link without the plugin, it shows what the
// engine's work around a macvlan endpoint costs.
//
//	MVS_BENCH=smoke go test -tags e2e -count=1 -v -timeout 40m -run '^TestBenchSwarm$' ./test/e2e/
//	MVS_BENCH=full  go test -tags e2e -count=1 -v -timeout 40m -run '^TestBenchSwarm$' ./test/e2e/
//
// For profiling, MVS_BENCH_SWARM_REPLICAS, MVS_BENCH_SWARM_ROUNDS and
// MVS_BENCH_SWARM_RUNS replace N (50, smoke 6), the rounds (3, smoke 1) and
// the docker runs per network (10, smoke 2); with MVS_LAB_DEBUG=1 and
// MVS_LAB_KEEP=1 the engines' debug logs stay in the lab directory, and the
// test logs the wall-clock time of every scale call to find them there.
// MVS_BENCH_SWARM_NETOPTS adds driver options (space-separated key=value,
// each passed as -o) to the plugin's network, for side-by-side trials such as
// com.docker.network.advertise_addr_nmsgs=0.
//
// Each round scales each service in turn (the order rotates from round to
// round, so no service always runs first; the docker runs rotate likewise):
//
//   - up: the replicas set from 0 to N through the manager's API; the time
//     runs from the update call to the first poll of the manager's task list
//     (every 50 ms) that shows N tasks running;
//   - down: the replicas set from N to 0; the time runs from the update call
//     until no task of the service is running (or about to), no container of
//     it is left on either node (stopped ones included) and, for the plugin,
//     no macvlan link is left in either node's namespace (the plugin's links
//     are there before a container gets them and after it gives them back,
//     until the plugin deletes them; likewise for the built-in macvlan). An
//     overlay network has no per-container link in the node's namespace: its bridge and vxlan live in the
//     network's own sandbox namespace and stay as long as the network is used
//     on the node, so for the overlay "everything gone" is tasks and
//     containers.
//
// The services run busybox's sleep with --stop-signal KILL: a process that
// ignores SIGTERM would make both sides wait out the stop grace period and
// hide the network's share of the teardown.
//
// The engine's floor is measured the same way, interleaved with the two: a
// third service on the node's host network (no network set-up at all) and
// `docker run --network none`. It is logged and noted in the part, not a
// figure: what the engine costs without any network is the part of both
// times no driver can take away.
//
// The image is imported on node1 and copied to node2 (docker save | docker
// load), so that both hold the same image ID, and the services name it by
// that ID: a worker then starts the task from the local image at once. By
// name (mvs-busybox:latest), every task first tries to pull it from Docker
// Hub, which cannot be reached here, and logs the failure.
//
// It writes part 3 (benchres) and logs the figures. It never asserts a time;
// it fails only when a figure cannot be produced: tasks that do not converge
// within bsWait, a `docker run` that fails, links that stay behind.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

const (
	bsPluginSubnet  = "10.94.0.0/24" // N tasks plus the docker runs, at most a few at a time
	bsPluginGateway = "10.94.0.1"
	bsOverlaySubnet = "10.94.1.0/24"
	// The built-in macvlan in swarm scope takes its settings from a
	// config-only network on each node. Its address manager is each node's
	// own, so each node gets half of the subnet: on the same range the two
	// nodes would hand out the same addresses, the gap the plugin exists for.
	bsMacvlanSubnet  = "10.94.2.0/24"
	bsMacvlanGateway = "10.94.2.1"

	// bsWait bounds one scale or one teardown: a hung engine, not a slow one.
	bsWait = 5 * time.Minute
	// bsPoll is how often the waits look.
	bsPoll = 50 * time.Millisecond
	// bsSettle is the pause between two measured phases, so that what the
	// engines still do in the background after one (network teardown on a
	// node, the plugin's reaper) does not land in the next.
	bsSettle = 2 * time.Second
)

// bsNet is one side of the comparison: an attachable swarm network and a
// dnsrr service on it.
type bsNet struct {
	label   string // "plugin", "overlay", "macvlan" (built-in, swarm scope) or "host" (the floor)
	network string // for the service
	run     string // for docker run
	service string
	svcID   string
	plugin  bool
	links   bool // its containers' links sit in the node's namespace: wait for them to go
}

// bsDown is what one scale-down cost, each time from the update call.
type bsDown struct {
	tasks, containers, gone time.Duration
}

func TestBenchSwarm(t *testing.T) {
	mode := benchres.CurrentMode()
	if mode == benchres.Off {
		t.Skip("benchmark (part 3 of make bench): set MVS_BENCH=smoke or MVS_BENCH=full to run it")
	}
	began := time.Now()
	replicas := benchres.EnvInt(t.Fatalf, "MVS_BENCH_SWARM_REPLICAS", mode.Pick(50, 6), 0)
	rounds := benchres.EnvInt(t.Fatalf, "MVS_BENCH_SWARM_ROUNDS", mode.Rounds(3), 0)
	runs := benchres.EnvInt(t.Fatalf, "MVS_BENCH_SWARM_RUNS", mode.Pick(10, 2), 0)
	if replicas < 1 || replicas > 200 || rounds < 1 || runs < 1 {
		t.Fatalf("MVS_BENCH_SWARM_REPLICAS (1 to 200), _ROUNDS and _RUNS (≥ 1): %d, %d, %d", replicas, rounds, runs)
	}

	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 2})
	mgr, wrk := l.Node(1), l.Node(2)
	img := bsImage(t, mgr, wrk)
	for _, n := range l.Nodes {
		// LOG_LEVEL=debug: the plugin logs each request's duration, read
		// below to show the plugin's share.
		n.InstallPluginFromDir(t, pluginRef, pluginDir, "LOG_LEVEL=debug")
	}
	// The swarm is formed after the plugin is enabled: the manager lists it
	// at once.
	l.InitSwarm(t, 1, 1)
	lab.WaitPluginListed(t, mgr, pluginRef, l.Nodes...)
	engine := mgr.Docker(t, "version", "-f", "{{.Server.Version}}")

	nets := []*bsNet{
		{label: "plugin", network: "bs-plugin", run: "bs-plugin", service: "bs-plugin-svc", plugin: true, links: true},
		{label: "overlay", network: "bs-overlay", run: "bs-overlay", service: "bs-overlay-svc"},
		{label: "macvlan", network: "bs-macvlan", run: "bs-macvlan", service: "bs-macvlan-svc", links: true},
		{label: "host", network: "host", run: "none", service: "bs-host-svc"},
	}
	popts := []string{"network", "create", "-d", pluginRef, "--attachable", "--subnet", bsPluginSubnet,
		"--gateway", bsPluginGateway, "-o", "parent=" + mgr.LANLink}
	for _, o := range strings.Fields(os.Getenv("MVS_BENCH_SWARM_NETOPTS")) {
		popts = append(popts, "-o", o)
	}
	mgr.Docker(t, append(popts, nets[0].network)...)
	mgr.Docker(t, "network", "create", "-d", "overlay", "--attachable", "--subnet", bsOverlaySubnet, nets[1].network)
	for i, n := range l.Nodes {
		n.Docker(t, "network", "create", "--config-only", "--subnet", bsMacvlanSubnet, "--gateway", bsMacvlanGateway,
			"--ip-range", fmt.Sprintf("10.94.2.%d/25", 128*i), "-o", "parent="+n.LANLink, "bs-macvlan-config")
	}
	mgr.Docker(t, "network", "create", "-d", "macvlan", "--scope", "swarm", "--config-from", "bs-macvlan-config",
		"--attachable", nets[2].network)
	for _, s := range nets {
		s.svcID = mgr.Docker(t, "service", "create", "-d", "--no-resolve-image", "--name", s.service,
			"--network", s.network, "--replicas", "0", "--endpoint-mode", "dnsrr", "--stop-signal", "KILL",
			img, "sleep", "2147483647")
	}
	t.Logf("swarm of %s (manager) and %s (worker), engine %s; %d round(s) of 0 → %d → 0, %d docker run(s) per network",
		mgr.Name, wrk.Name, engine, rounds, replicas, runs)

	up := map[string][]time.Duration{}
	assigned := map[string][]time.Duration{} // until the managers had placed every task
	down := map[string][]bsDown{}
	reqs := map[string]map[string][]time.Duration{"up": {}, "down": {}, "run": {}}
	for r := 1; r <= rounds; r++ {
		for _, s := range bsRotate(nets, r-1) {
			time.Sleep(bsSettle)
			marks := bsLogMarks(t, l)
			u, a := bsScaleUp(t, mgr, s, replicas)
			up[s.label] = append(up[s.label], u)
			assigned[s.label] = append(assigned[s.label], a)
			if s.plugin {
				bsAddReqs(reqs["up"], bsPluginReqs(t, l, marks, "up"))
			}
			time.Sleep(bsSettle)
			marks = bsLogMarks(t, l)
			d := bsScaleDown(t, l, s)
			down[s.label] = append(down[s.label], d)
			if s.plugin {
				bsAddReqs(reqs["down"], bsPluginReqs(t, l, marks, "down"))
			}
			t.Logf("round %d %-7s 0 → %d all assigned %s, all running %s; %d → 0 tasks stopped %s, containers gone %s, everything gone %s",
				r, s.label, replicas, bpMs(a), bpMs(u), replicas, bpMs(d.tasks), bpMs(d.containers), bpMs(d.gone))
		}
		for _, label := range []string{"plugin", "overlay", "macvlan"} {
			if label != "plugin" {
				t.Logf("round %d plugin ÷ %s: up %s, down %s", r, label,
					bpRatio(up["plugin"][r-1], up[label][r-1]), bpRatio(down["plugin"][r-1].gone, down[label][r-1].gone))
			}
			t.Logf("round %d %s above the floor (host): up %s, down %s", r, label,
				bsDiff(up[label][r-1], up["host"][r-1]), bsDiff(down[label][r-1].gone, down["host"][r-1].gone))
		}
	}
	// docker run on each attachable network (and --network none), from the
	// manager's CLI, interleaved; one run each first, not counted (the
	// first container of an image on a network).
	run := map[string][]time.Duration{}
	for _, s := range nets {
		bsRun(t, mgr, img, s)
	}
	for i := range runs {
		for _, s := range bsRotate(nets, i) {
			marks := bsLogMarks(t, l)
			d := bsRun(t, mgr, img, s)
			run[s.label] = append(run[s.label], d)
			if s.plugin {
				bsAddReqs(reqs["run"], bsPluginReqs(t, l, marks, ""))
			}
		}
	}
	bsWaitNoLinks(t, l)
	for _, s := range nets {
		t.Logf("docker run --rm … true on %s (%s): %s ms", s.label, s.run, bsMsList(run[s.label]))
	}

	// The plugin's own time per request, from its debug log (both nodes).
	for _, phase := range []string{"up", "down", "run"} {
		t.Logf("plugin requests during %s: %s", phase, bsReqSummary(reqs[phase]))
	}

	// Figures: medians over rounds (scale) and over runs (docker run).
	goneSecs := func(label string) []float64 {
		var g []time.Duration
		for _, d := range down[label] {
			g = append(g, d.gone)
		}
		return bsSecs(g)
	}
	upMed := map[string]float64{}
	downMed := map[string]float64{}
	for _, label := range []string{"plugin", "overlay", "macvlan", "host"} {
		upMed[label] = benchres.Median(bsSecs(up[label]))
		downMed[label] = benchres.Median(goneSecs(label))
	}
	runMs := map[string][]float64{}
	for _, s := range nets {
		runMs[s.label] = benchres.Ms(run[s.label])
	}

	p := benchres.Part{N: 3, Title: "swarm", Engine: engine}
	ratio := func(limit float64) *benchres.Target { return &benchres.Target{Of: "ratio", Op: "<=", Limit: limit} }
	// The overlay is the peer the targets name. The engine's own macvlan
	// driver in swarm scope has none: the same kind of link and no plugin in
	// between, set up by the same engine code around it.
	for _, peer := range []struct {
		label, name               string
		up, down, run             *benchres.Target
		upNote, downNote, runNote string
	}{
		{"overlay", "overlay", ratio(0.8), ratio(0.8), ratio(0.7),
			"2 nodes, --stop-signal KILL; from the update call to N tasks running in the manager's task list",
			"no task running, no container left on either node, and for the plugin no macvlan link left " +
				"(the overlay's bridge and vxlan stay with the network)",
			"on the manager, CLI 20.10 wall time, the networks interleaved"},
		{"macvlan", "built-in macvlan (swarm scope)", nil, nil, nil,
			"no target: the built-in driver (--scope swarm --config-from, each node its own half of the subnet) shows what the engine costs around a macvlan link",
			"no target; for both, everything gone includes no macvlan link left on either node",
			"no target"},
	} {
		p.Add(benchres.Figure{
			Name: fmt.Sprintf("dnsrr service 0 → %d: all tasks running", replicas), Label: "plugin",
			Value: upMed["plugin"], Unit: "s", Peer: peer.name, PeerValue: upMed[peer.label],
			Target: peer.up, Samples: rounds, Paired: benchres.PairedRatios(bsSecs(up["plugin"]), bsSecs(up[peer.label])),
			Note: peer.upNote,
		})
		p.Add(benchres.Figure{
			Name: fmt.Sprintf("dnsrr service %d → 0: everything gone", replicas), Label: "plugin",
			Value: downMed["plugin"], Unit: "s", Peer: peer.name, PeerValue: downMed[peer.label],
			Target: peer.down, Samples: rounds, Paired: benchres.PairedRatios(goneSecs("plugin"), goneSecs(peer.label)),
			Note: peer.downNote,
		})
		p.Add(benchres.Figure{
			Name: "docker run --rm … true, attachable swarm network", Label: "plugin",
			Value: benchres.Median(runMs["plugin"]), Unit: "ms", Peer: peer.name, PeerValue: benchres.Median(runMs[peer.label]),
			Target: peer.run, Samples: runs, Paired: benchres.PairedRatios(runMs["plugin"], runMs[peer.label]),
			Note: peer.runNote,
		})
	}
	for _, label := range []string{"plugin", "overlay", "macvlan"} {
		p.AddSeries(benchres.Series{Chart: "swarm-run", Title: "docker run --rm … true on an attachable swarm network",
			Kind: "dist", Label: strings.Replace(label, "macvlan", "built-in macvlan", 1), Unit: "ms", Value: runMs[label]})
	}
	// The bars: up then down, plugin, overlay, and the engine's floor (a
	// service on the host network, no network set-up at all).
	scaleTitle := fmt.Sprintf("dnsrr service 0 → %d → 0 on 2 nodes (median; built-in = the engine's macvlan in swarm scope)", replicas)
	for _, dir := range []struct {
		name string
		med  map[string]float64
	}{{"up", upMed}, {"down", downMed}} {
		for _, label := range []string{"plugin", "overlay", "macvlan", "host"} {
			bar := label + " " + dir.name
			switch label {
			case "host":
				bar = "floor (host) " + dir.name
			case "macvlan":
				bar = "built-in " + dir.name
			}
			p.AddSeries(benchres.Series{Chart: "swarm-scale", Title: scaleTitle,
				Kind: "bar", Label: bar, Unit: "s", Value: []float64{dir.med[label]}})
		}
	}
	p.Notes = append(p.Notes,
		fmt.Sprintf("1 manager + 1 worker, engine %s; %d round(s), networks alternating first; %d docker runs each after one uncounted run",
			engine, rounds, runs),
		"down: for the overlay, everything gone = no task running and no container left; its bridge and vxlan live in the network's sandbox namespace as long as the network is in use",
		fmt.Sprintf("engine floor, measured alongside (medians): a service on the host network 0 → %d %s s, %d → 0 %s s; docker run --network none %s ms",
			replicas, benchres.Num(upMed["host"]), replicas, benchres.Num(downMed["host"]), benchres.Num(benchres.Median(runMs["host"]))),
		fmt.Sprintf("0 → %d, until the managers had placed every task (assigned to a node or further; allocation and scheduling), medians: plugin %s s, overlay %s s, built-in macvlan %s s, host %s s",
			replicas, benchres.Num(benchres.Median(bsSecs(assigned["plugin"]))), benchres.Num(benchres.Median(bsSecs(assigned["overlay"]))),
			benchres.Num(benchres.Median(bsSecs(assigned["macvlan"]))), benchres.Num(benchres.Median(bsSecs(assigned["host"])))),
		fmt.Sprintf("the plugin's own time (its debug log, arrival to answer, both nodes, summed; requests overlap): per round up %s s, down %s s; per docker run %s ms",
			benchres.Num(bsSum(reqs["up"]).Seconds()/float64(rounds)), benchres.Num(bsSum(reqs["down"]).Seconds()/float64(rounds)),
			benchres.Num(float64(bsSum(reqs["run"]))/float64(time.Millisecond)/float64(runs))),
	)
	p.Seconds = time.Since(began).Seconds()
	for _, n := range p.Notes {
		t.Logf("note: %s", n)
	}
	for _, f := range p.Figures {
		target := "none"
		if f.Target != nil {
			target = f.Target.String(f.Unit) + ": " + f.Verdict()
		}
		t.Logf("figure: %s: %s %s %s, %s %s %s (ratio %.2f, target %s, %d samples)", f.Name, f.Label, benchres.Num(f.Value), f.Unit,
			f.Peer, benchres.Num(f.PeerValue), f.Unit, f.Ratio(), target, f.Samples)
	}
	if err := benchres.Check([]benchres.Part{p}, []int{3}); err != nil {
		t.Fatalf("part 3: %v", err)
	}
	path, err := benchres.Write(p)
	if err != nil {
		t.Fatalf("part 3: %v", err)
	}
	t.Logf("part 3 written to %s", path)
}

// bsRotate is the sides in the order of round (or run) i: each goes first
// in turn.
func bsRotate(nets []*bsNet, i int) []*bsNet {
	k := i % len(nets)
	return append(slices.Clone(nets[k:]), nets[:k]...)
}

// bsImage imports the busybox image on a, copies it to b with docker save |
// docker load (same image ID on both) and returns that ID, which a service
// can name: a worker does not try to pull an image named by its ID.
func bsImage(t *testing.T, a, b *lab.Node) string {
	t.Helper()
	ref := lab.BusyboxImage(t, a)
	save := exec.Command(a.Engine().CLI, "-H", a.Host, "save", ref)
	load := exec.Command(b.Engine().CLI, "-H", b.Host, "load")
	save.Env, load.Env = lab.CleanEnv(), lab.CleanEnv()
	pipe, err := save.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	load.Stdin = pipe
	var saveErr strings.Builder
	save.Stderr = &saveErr
	if err := save.Start(); err != nil {
		t.Fatalf("docker save: %v", err)
	}
	out, err := load.CombinedOutput()
	if werr := save.Wait(); werr != nil {
		t.Fatalf("docker save %s on %s: %v: %s", ref, a.Name, werr, saveErr.String())
	}
	if err != nil {
		t.Fatalf("docker load on %s: %v: %s", b.Name, err, out)
	}
	id := a.Docker(t, "image", "inspect", "-f", "{{.Id}}", ref)
	if other := b.Docker(t, "image", "inspect", "-f", "{{.Id}}", ref); other != id {
		t.Fatalf("image %s: ID %s on %s, %s on %s", ref, id, a.Name, other, b.Name)
	}
	return id
}

// bsScale sets the service's replicas through the manager's API and returns
// when the update call was made.
func bsScale(t *testing.T, mgr *lab.Node, s *bsNet, replicas uint64) time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cli := mgr.Client()
	svc, _, err := cli.ServiceInspectWithRaw(ctx, s.svcID, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", s.service, err)
	}
	if svc.Spec.Mode.Replicated == nil {
		t.Fatalf("%s is not a replicated service", s.service)
	}
	svc.Spec.Mode.Replicated.Replicas = &replicas
	began := time.Now()
	t.Logf("%s: scale to %d at %s", s.service, replicas, began.UTC().Format("15:04:05.000"))
	resp, err := cli.ServiceUpdate(ctx, svc.ID, svc.Version, svc.Spec, swarm.ServiceUpdateOptions{})
	if err != nil {
		t.Fatalf("scale %s to %d: %v", s.service, replicas, err)
	}
	for _, w := range resp.Warnings {
		t.Logf("scale %s: warning: %s", s.service, w)
	}
	return began
}

// bsScaleUp scales 0 → n and returns the time until the manager lists n
// tasks of the service running, and the time until it first listed all n
// assigned to a node or further on: the managers' share (allocation, for a
// global-scope network an address for each task, then scheduling), before
// the nodes' work begins.
func bsScaleUp(t *testing.T, mgr *lab.Node, s *bsNet, n int) (running, assigned time.Duration) {
	t.Helper()
	began := bsScale(t, mgr, s, uint64(n))
	lab.Eventually(t, bsWait, bsPoll, fmt.Sprintf("%s: %d tasks running", s.service, n), func() error {
		tasks := bsTasks(t, mgr, s, true)
		nRunning, nPlaced := 0, 0
		var other []string
		for _, tk := range tasks {
			if bsPlaced(tk.Status.State) {
				nPlaced++
			}
			if tk.Status.State == swarm.TaskStateRunning {
				nRunning++
			} else if len(other) < 5 {
				other = append(other, fmt.Sprintf("%s %s %s", tk.ID[:12], tk.Status.State, tk.Status.Err))
			}
		}
		if nPlaced == n && assigned == 0 {
			assigned = time.Since(began)
		}
		if nRunning != n {
			return fmt.Errorf("%d of %d running (%d meant to run); others: %v", nRunning, n, len(tasks), other)
		}
		return nil
	})
	return time.Since(began), assigned
}

// bsPlaced is a task state at or past assigned, up to running: the managers
// are done with it and a node has it.
func bsPlaced(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateAssigned, swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady,
		swarm.TaskStateStarting, swarm.TaskStateRunning:
		return true
	}
	return false
}

// bsScaleDown scales n → 0 and returns the times until no task is running,
// until no container is left on either node, and until everything is gone
// (the plugin's links too). The conditions are waited for one after the
// other: each stays true once it is (nothing starts a task of a service
// scaled to 0).
func bsScaleDown(t *testing.T, l *lab.Lab, s *bsNet) bsDown {
	t.Helper()
	mgr := l.Node(1)
	began := bsScale(t, mgr, s, 0)
	var d bsDown
	lab.Eventually(t, bsWait, bsPoll, s.service+": no task running", func() error {
		alive := 0
		for _, tk := range bsTasks(t, mgr, s, false) {
			if bsAlive(tk.Status.State) {
				alive++
			}
		}
		if alive > 0 {
			return fmt.Errorf("%d task(s) still running or starting", alive)
		}
		return nil
	})
	d.tasks = time.Since(began)
	lab.Eventually(t, bsWait, bsPoll, s.service+": no container left", func() error {
		for _, n := range l.Nodes {
			if c := bsContainers(t, n, s); c > 0 {
				return fmt.Errorf("%s: %d container(s) left", n.Name, c)
			}
		}
		return nil
	})
	d.containers = time.Since(began)
	if s.links {
		bsWaitNoLinks(t, l)
	}
	d.gone = time.Since(began)
	return d
}

// bsWaitNoLinks waits until no macvlan link is left in any node's namespace
// (the overlay makes none there), and fails if one stays for bsWait.
func bsWaitNoLinks(t *testing.T, l *lab.Lab) {
	t.Helper()
	lab.Eventually(t, bsWait, bsPoll, "no macvlan link left on any node", func() error {
		for _, n := range l.Nodes {
			if left := bpMacvlanLinks(t, n); len(left) > 0 {
				return fmt.Errorf("%s: %d left: %v", n.Name, len(left), left)
			}
		}
		return nil
	})
}

// bsAlive is a task state before or at running: the task runs or will.
func bsAlive(s swarm.TaskState) bool {
	switch s {
	case swarm.TaskStateNew, swarm.TaskStateAllocated, swarm.TaskStatePending, swarm.TaskStateAssigned,
		swarm.TaskStateAccepted, swarm.TaskStatePreparing, swarm.TaskStateReady, swarm.TaskStateStarting,
		swarm.TaskStateRunning:
		return true
	}
	return false
}

// bsTasks lists the service's tasks on the manager; desired: only those
// meant to run.
func bsTasks(t *testing.T, mgr *lab.Node, s *bsNet, desired bool) []swarm.Task {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f := filters.NewArgs(filters.Arg("service", s.svcID))
	if desired {
		f.Add("desired-state", "running")
	}
	tasks, err := mgr.Client().TaskList(ctx, swarm.TaskListOptions{Filters: f})
	if err != nil {
		t.Fatalf("task list on %s: %v", mgr.Name, err)
	}
	return tasks
}

// bsContainers counts the service's containers on a node, stopped ones
// included.
func bsContainers(t *testing.T, n *lab.Node, s *bsNet) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := n.Client().ContainerList(ctx, container.ListOptions{All: true,
		Filters: filters.NewArgs(filters.Arg("label", "com.docker.swarm.service.id="+s.svcID))})
	if err != nil {
		t.Fatalf("%s: container list: %v", n.Name, err)
	}
	return len(cs)
}

// bsRun times one `docker run --rm <img> true` on the network, on the
// manager, through the engine's own CLI.
func bsRun(t *testing.T, n *lab.Node, img string, s *bsNet) time.Duration {
	t.Helper()
	began := time.Now()
	out, errOut, err := n.DockerErr("run", "--rm", "--network", s.run, img, "true")
	d := time.Since(began)
	if err != nil {
		t.Fatalf("%s: docker run on %s: %v\nstderr: %s\nstdout: %s", n.Name, s.run, err, errOut, out)
	}
	return d
}

// bsLogMarks are the sizes of the nodes' dockerd logs, to read a phase's
// plugin lines afterwards.
func bsLogMarks(t *testing.T, l *lab.Lab) []int {
	t.Helper()
	marks := make([]int, len(l.Nodes))
	for i, n := range l.Nodes {
		marks[i] = len(n.Log(t))
	}
	return marks
}

// bsPluginReqs reads the plugin's request durations from every node's log
// since marks. With a phase name it also logs, per node, how long the
// driver's state lock was held in all (estimated from the answers'
// timestamps, see bpPluginRequests): the most the plugin's own serialised
// work can add to that node's critical path.
func bsPluginReqs(t *testing.T, l *lab.Lab, marks []int, phase string) map[string][]time.Duration {
	t.Helper()
	all := map[string][]time.Duration{}
	var held []string
	for i, n := range l.Nodes {
		dur, h := bpPluginRequests(n.Log(t)[marks[i]:])
		bsAddReqs(all, dur)
		held = append(held, fmt.Sprintf("%s %s", n.Name, bpMs(bsSum(h))))
	}
	if phase != "" {
		t.Logf("plugin %s: driver lock held (estimate) %s; time in the plugin, all requests summed, %s",
			phase, strings.Join(held, ", "), bpMs(bsSum(all)))
	}
	return all
}

func bsAddReqs(to, from map[string][]time.Duration) {
	for m, ds := range from {
		to[m] = append(to[m], ds...)
	}
}

// bsReqSummary: per method, count, p50, max and the sum of the plugin's
// time (the sum over both nodes; requests may overlap).
func bsReqSummary(reqs map[string][]time.Duration) string {
	methods := make([]string, 0, len(reqs))
	for m := range reqs {
		methods = append(methods, m)
	}
	slices.Sort(methods)
	var parts []string
	for _, m := range methods {
		ds := reqs[m]
		var sum time.Duration
		for _, d := range ds {
			sum += d
		}
		parts = append(parts, fmt.Sprintf("%s n=%d p50 %s max %s sum %s", m, len(ds), bpMs(bpPct(ds, 50)), bpMs(bpPct(ds, 100)), bpMs(sum)))
	}
	if len(parts) == 0 {
		return "(none logged)"
	}
	return strings.Join(parts, "; ")
}

func bsSecs(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}

func bsMsList(ds []time.Duration) string {
	var parts []string
	for _, d := range ds {
		parts = append(parts, fmt.Sprintf("%.0f", float64(d)/float64(time.Millisecond)))
	}
	return strings.Join(parts, " ")
}

// bsDiff is a − b in milliseconds, signed.
func bsDiff(a, b time.Duration) string {
	return fmt.Sprintf("%+.0f ms", float64(a-b)/float64(time.Millisecond))
}

// bsSum is the plugin's time over every request of a phase.
func bsSum(reqs map[string][]time.Duration) time.Duration {
	var sum time.Duration
	for _, ds := range reqs {
		for _, d := range ds {
			sum += d
		}
	}
	return sum
}
