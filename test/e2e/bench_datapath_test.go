//go:build e2e

package e2e

// TestBenchDataPath is part 4 of `make bench`, the data path between two
// nodes (issue 11): TCP throughput of one stream and the round trip of a
// 1-byte TCP ping-pong, between a container on node1 and a container on
// node2, over three paths measured by the same tool in the same run:
//
//	node-to-node  the two node namespaces themselves, over their LAN links
//	              (veth → the lab's bridge → veth): the lab LAN's limit
//	plugin        an attachable network of the plugin, macvlan on each
//	              node's eth0
//	overlay       an attachable overlay network (VXLAN over the same LAN)
//
// The tool is test/lab/nettool, built static into a temporary folder and
// bind-mounted read-only into busybox containers; for node-to-node those
// containers are on the host network, so the tool runs in the node
// namespaces directly. One server per path runs on node1 for the whole
// bench, one client per path on node2 (a container that sleeps, the
// measurements run with docker exec). Rounds interleave the paths in a
// rotating order (node, plugin, overlay; plugin, overlay, node; …), each
// path a stream and then a ping-pong, so background load on this shared
// machine falls on all three alike.
//
//	MVS_BENCH=smoke   1 round, 1 s streams, 200 round trips
//	MVS_BENCH=full    11 rounds, 3 s streams, 2000 round trips
//
// Eleven rounds: one stream over veth is CPU-bound on this 2-core machine
// and its rounds swing by ±12 %, so the median of five per-round ratios
// moved from 0.95 to 1.07 between runs of the same code.
//
//	MVS_BENCH=full go test -tags e2e -count=1 -v -run '^TestBenchDataPath$' ./test/e2e/
//
// Figures (benchres part 4): throughput (median over rounds) of plugin and
// overlay next to node-to-node; the p50 and p99 round trip (all rounds'
// round trips pooled) of plugin and overlay next to node-to-node. It never
// asserts a time; it fails only when a figure cannot be produced.

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// Names and addresses of the data-path bench.
const (
	dpPlugin        = "macvlan-swarm:datapath"
	dpPluginNet     = "dp-mvlan"
	dpPluginSubnet  = "10.98.4.0/24"
	dpOverlayNet    = "dp-overlay"
	dpOverlaySubnet = "10.98.5.0/24"
	dpPort          = "5201"
	dpTool          = "/nettool" // where containers see the tool

	dpNode    = "node-to-node"
	dpPluginL = "plugin"
	dpOverlay = "overlay"
)

// dpPath is one of the three paths: where its server listens and how its
// client on node2 runs the tool.
type dpPath struct {
	label  string
	server string                               // host:port on node1
	client func(args ...string) (string, error) // runs nettool args… on node2
	mtu    string                               // the client's link MTU, for the log
}

// dpResults pools one path's measurements over the rounds.
type dpResults struct {
	gbps []float64 // one per round
	p50  []float64 // one per round, µs
	rtt  []float64 // every round trip of every round, µs
}

func TestBenchDataPath(t *testing.T) {
	mode := benchres.CurrentMode()
	if mode == benchres.Off {
		t.Skip("benchmark (part 4 of make bench): set MVS_BENCH=smoke or MVS_BENCH=full to run it")
	}
	rounds := mode.Rounds(11)
	streamFor := time.Duration(mode.Pick(3, 1)) * time.Second
	rrCount := mode.Pick(2000, 200)
	began, loadBefore := time.Now(), dpLoad()
	step := lab.Steps(t)

	tool := dpBuildTool(t)
	pluginDir := lab.PluginDir(t)
	step("nettool built")

	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)
	// Installed before the swarm is formed, so that the nodes' first
	// descriptions list it.
	for _, n := range l.Nodes {
		n.InstallPluginFromDir(t, dpPlugin, pluginDir)
	}
	l.InitSwarm(t, 1, 1)
	lab.WaitPluginListed(t, n1, dpPlugin, l.Nodes...)
	var img string
	for _, n := range l.Nodes {
		img = lab.BusyboxImage(t, n)
	}
	n1.Docker(t, "network", "create", "-d", dpPlugin, "--attachable", "--subnet", dpPluginSubnet,
		"-o", "parent="+n1.LANLink, dpPluginNet)
	n1.Docker(t, "network", "create", "-d", "overlay", "--attachable", "--subnet", dpOverlaySubnet, dpOverlayNet)
	step("swarm of 2 with the plugin, a plugin network and an overlay network")

	// One server container on node1 and one client container on node2 per
	// path; node-to-node's are on the host network, i.e. in the node
	// namespaces themselves, on the nodes' LAN addresses. All three run the
	// tool the same way (docker exec into a container on node2): processes
	// started outside a container sit in another CPU cgroup than the
	// containers (cgroup v1: every container under /docker, everything else
	// at the root), and on a shared 2-core machine that alone changes how
	// much CPU a stream gets.
	mount := tool + ":" + dpTool + ":ro"
	var paths []*dpPath
	for _, p := range []struct{ label, network string }{{dpNode, "host"}, {dpPluginL, dpPluginNet}, {dpOverlay, dpOverlayNet}} {
		srvName, cliName := "dp-srv-"+p.label, "dp-cli-"+p.label
		listen, link := ":"+dpPort, "eth0"
		if p.network == "host" {
			listen, link = n1.Addr+":"+dpPort, n2.LANLink
		}
		n1.Docker(t, "run", "-d", "--name", srvName, "--network", p.network, "-v", mount, img,
			dpTool, "serve", "-listen", listen)
		n2.Docker(t, append([]string{"run", "-d", "--name", cliName, "--network", p.network, "-v", mount, img}, lab.Sleeper...)...)
		server := n1.Addr + ":" + dpPort
		if p.network != "host" {
			ip := n1.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+p.network+`").IPAddress}}`, srvName)
			if ip == "" {
				t.Fatalf("%s: no address on %s", srvName, p.network)
			}
			server = ip + ":" + dpPort
		}
		paths = append(paths, &dpPath{
			label:  p.label,
			server: server,
			client: func(args ...string) (string, error) {
				out, errOut, err := n2.DockerErr(append([]string{"exec", cliName, dpTool}, args...)...)
				if err != nil {
					return out, fmt.Errorf("%w: %s", err, errOut)
				}
				return out, nil
			},
			mtu: n2.Docker(t, "exec", cliName, "cat", "/sys/class/net/"+link+"/mtu"),
		})
	}
	// Every server answers before the first round, which also gets the
	// neighbour entries (and the overlay's peer entries) in place.
	for _, p := range paths {
		lab.Eventually(t, time.Minute, 250*time.Millisecond, p.label+" server reachable from node2", func() error {
			_, err := p.client("rr", "-to", p.server, "-n", "10", "-warmup", "0")
			return err
		})
		t.Logf("%-12s server %s, client link MTU %s", p.label, p.server, p.mtu)
	}
	step("servers on node1 and clients on node2 ready")

	res := map[string]*dpResults{}
	for _, p := range paths {
		res[p.label] = &dpResults{}
	}
	for r := range rounds {
		order := append(slices.Clone(paths[r%len(paths):]), paths[:r%len(paths)]...)
		for _, p := range order {
			out, err := p.client("stream", "-to", p.server, "-for", streamFor.String())
			if err != nil {
				t.Fatalf("round %d, %s: nettool stream: %v\n%s", r+1, p.label, err, out)
			}
			gbps := dpField(t, out, "stream", "gbps")
			out, err = p.client("rr", "-to", p.server, "-n", strconv.Itoa(rrCount), "-samples")
			if err != nil {
				t.Fatalf("round %d, %s: nettool rr: %v\n%s", r+1, p.label, err, out)
			}
			p50, p99 := dpField(t, out, "rr", "p50_us"), dpField(t, out, "rr", "p99_us")
			rs := res[p.label]
			rs.gbps = append(rs.gbps, gbps)
			rs.p50 = append(rs.p50, p50)
			rs.rtt = append(rs.rtt, dpSamples(t, out)...)
			t.Logf("round %d %-12s %7.2f Gbit/s   rr p50 %6.1f µs  p99 %6.1f µs", r+1, p.label, gbps, p50, p99)
		}
	}
	step(fmt.Sprintf("%d round(s) of %v streams and %d round trips on each path", rounds, streamFor, rrCount))

	part := benchres.Part{N: 4, Title: "data path between two nodes", Mode: mode,
		Engine: n1.Docker(t, "version", "-f", "{{.Server.Version}}")}
	dpFigures(&part, res, rounds)
	for _, p := range paths {
		rs := res[p.label]
		part.AddSeries(benchres.Series{Chart: "datapath-throughput", Title: "TCP throughput, one stream, node1 ← node2",
			Kind: "bar", Label: p.label, Unit: "Gbit/s", Value: []float64{benchres.Median(rs.gbps)}})
	}
	for _, p := range paths {
		part.AddSeries(benchres.Series{Chart: "datapath-latency", Title: "TCP round trip, 1-byte ping-pong",
			Kind: "dist", Label: p.label, Unit: "µs", Value: res[p.label].rtt})
	}
	part.Notes = []string{
		fmt.Sprintf("two-node swarm lab (engine %s), node2 → node1; %d round(s), paths in rotating order, each a %v stream then %d round trips (after 100 unmeasured)",
			part.Engine, rounds, streamFor, rrCount),
		fmt.Sprintf("per round, Gbit/s: %s", dpPerRound(paths, res, func(r *dpResults) []float64 { return r.gbps })),
		fmt.Sprintf("per round, rr p50 µs: %s", dpPerRound(paths, res, func(r *dpResults) []float64 { return r.p50 })),
		fmt.Sprintf("client link MTU: %s", strings.Join(dpMap(paths, func(p *dpPath) string { return p.label + " " + p.mtu }), ", ")),
		fmt.Sprintf("%d CPUs shared with other work; load average (1, 5, 15 min) at the start %s, at the end %s",
			runtime.NumCPU(), loadBefore, dpLoad()),
	}
	part.Seconds = time.Since(began).Seconds()

	var sb strings.Builder
	fmt.Fprintf(&sb, "\npart 4, %s: %s (%s mode)\n", part.Title, part.Engine, mode)
	fmt.Fprintf(&sb, "| figure | measured | value | peer | ratio | target | verdict |\n|---|---|---:|---:|---:|---|---|\n")
	for _, f := range part.Figures {
		target := ""
		if f.Target != nil {
			target = f.Target.String(f.Unit)
		}
		fmt.Fprintf(&sb, "| %s | %s | %s %s | %s %s | %s | %s | %s |\n", f.Name, f.Label,
			benchres.Num(f.Value), f.Unit, f.Peer, benchres.Num(f.PeerValue), benchres.Num(f.Ratio()), target, f.Verdict())
	}
	for _, n := range part.Notes {
		fmt.Fprintf(&sb, "- %s\n", n)
	}
	t.Log(sb.String())

	if err := benchres.Check([]benchres.Part{part}, []int{4}); err != nil {
		t.Fatalf("part 4 incomplete: %v", err)
	}
	path, err := benchres.Write(part)
	if err != nil {
		t.Fatalf("write part 4: %v", err)
	}
	t.Logf("part 4 written to %s", path)
}

// dpFigures adds the part's figures: throughput as the median over rounds,
// round trips as quantiles of every round trip pooled.
func dpFigures(part *benchres.Part, res map[string]*dpResults, rounds int) {
	node := res[dpNode]
	nodeGbps := benchres.Median(node.gbps)
	const tput = "TCP throughput, one stream"
	part.Add(benchres.Figure{Name: tput, Label: dpPluginL, Unit: "Gbit/s",
		Value: benchres.Median(res[dpPluginL].gbps), Peer: dpNode, PeerValue: nodeGbps, Samples: rounds,
		Target: &benchres.Target{Of: "ratio", Op: ">=", Limit: 0.95},
		Paired: benchres.PairedRatios(res[dpPluginL].gbps, node.gbps),
		Note:   "per-round ratio " + dpRoundRatios(res[dpPluginL].gbps, node.gbps)})
	part.Add(benchres.Figure{Name: tput, Label: dpOverlay, Unit: "Gbit/s",
		Value: benchres.Median(res[dpOverlay].gbps), Peer: dpNode, PeerValue: nodeGbps, Samples: rounds,
		Paired: benchres.PairedRatios(res[dpOverlay].gbps, node.gbps),
		Note:   "per-round ratio " + dpRoundRatios(res[dpOverlay].gbps, node.gbps) + "; no target, shown for comparison"})

	for _, q := range []struct {
		name string
		q    float64
	}{{"TCP round trip p50, 1-byte ping-pong", 0.5}, {"TCP round trip p99, 1-byte ping-pong", 0.99}} {
		nodeRTT := benchres.Quantile(node.rtt, q.q)
		f := part.Add(benchres.Figure{Name: q.name, Label: dpPluginL, Unit: "µs",
			Value: benchres.Quantile(res[dpPluginL].rtt, q.q), Peer: dpNode, PeerValue: nodeRTT,
			Samples: len(res[dpPluginL].rtt)})
		if q.q == 0.5 {
			// The "≥ 0.95 × node-to-node" for a figure where lower
			// is better: node ÷ plugin ≥ 0.95, i.e. plugin ÷ node ≤ 1/0.95.
			f.Target = &benchres.Target{Of: "ratio", Op: "<=", Limit: 1 / 0.95}
			f.Paired = benchres.PairedRatios(res[dpPluginL].p50, node.p50)
			f.Note = "the issue's \"≥ 0.95 × node-to-node\" for a lower-is-better figure: node ÷ plugin ≥ 0.95, " +
				"i.e. plugin ÷ node ≤ 1/0.95 ≈ 1.053; per-round p50 ratio " + dpRoundRatios(res[dpPluginL].p50, node.p50)
		}
		part.Add(benchres.Figure{Name: q.name, Label: dpOverlay, Unit: "µs",
			Value: benchres.Quantile(res[dpOverlay].rtt, q.q), Peer: dpNode, PeerValue: nodeRTT,
			Samples: len(res[dpOverlay].rtt), Note: "no target, shown for comparison"})
	}
}

// dpBuildTool builds test/lab/nettool static into a temporary folder.
func dpBuildTool(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go" // where .ci/run finds it too
	}
	out := filepath.Join(t.TempDir(), "nettool")
	cmd := exec.Command(goBin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./test/lab/nettool")
	cmd.Dir = lab.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./test/lab/nettool: %v\n%s", err, b)
	}
	return out
}

// dpField reads key=value from the output's line that starts with kind.
func dpField(t *testing.T, out, kind, key string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 || f[0] != kind {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, key+"="); ok {
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					t.Fatalf("nettool %s: %s=%q: %v", kind, key, v, err)
				}
				return x
			}
		}
	}
	t.Fatalf("nettool %s: no %s= in its output:\n%s", kind, key, out)
	return math.NaN()
}

// dpSamples reads rr -samples' second line.
func dpSamples(t *testing.T, out string) []float64 {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		v, ok := strings.CutPrefix(strings.TrimSpace(line), "samples_us=")
		if !ok {
			continue
		}
		var s []float64
		for _, f := range strings.Split(v, ",") {
			x, err := strconv.ParseFloat(f, 64)
			if err != nil {
				t.Fatalf("nettool rr: sample %q: %v", f, err)
			}
			s = append(s, x)
		}
		return s
	}
	t.Fatalf("nettool rr: no samples_us= line in its output")
	return nil
}

// dpRoundRatios is the median, min and max over rounds of a[i]/b[i]: the
// paths of one round ran back to back, under the same background load.
func dpRoundRatios(a, b []float64) string {
	var rs []float64
	for i := range min(len(a), len(b)) {
		if b[i] > 0 {
			rs = append(rs, a[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%s× (%s–%s)", benchres.Num(benchres.Median(rs)), benchres.Num(slices.Min(rs)), benchres.Num(slices.Max(rs)))
}

func dpPerRound(paths []*dpPath, res map[string]*dpResults, get func(*dpResults) []float64) string {
	return strings.Join(dpMap(paths, func(p *dpPath) string {
		return p.label + " " + strings.Join(dpMap(get(res[p.label]), benchres.Num), " ")
	}), "; ")
}

func dpMap[T any](xs []T, f func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = f(x)
	}
	return out
}

func dpLoad() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	return strings.Join(f[:min(3, len(f))], " ")
}
