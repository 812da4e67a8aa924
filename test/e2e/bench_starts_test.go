//go:build e2e

package e2e

// TestBenchStarts is part 1 of `make bench`: what a container start costs
// on each kind of network of a standalone engine, the way a user sees it
// (`docker run --rm --network X busybox true`, through the engine's CLI).
//
// Five kinds, interleaved run by run (the order rotates, so a slow moment of
// this shared machine falls on every kind alike): the plugin's network, the
// built-in macvlan on the same parent, a user-defined bridge network, the
// default bridge and `--network none`. `none` is the floor: a start that does
// no networking. Each kind's networking cost is its start minus the `none`
// start of the same round, and the figure is the median over rounds.
//
// The plugin's share of its networking cost comes from its own request
// timings: the sum of its request_duration_seconds histogram over every
// method (scraped from METRICS_ADDR before and after), divided by the number
// of starts. The rest is the engine's work around the plugin.
//
//	MVS_BENCH=full go test -tags e2e -count=1 -v -run '^TestBenchStarts$' ./test/e2e/
//
// MVS_BENCH=smoke runs 2 rounds only to prove every figure is produced.
// It never asserts a time.

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/telemetry/telemetrytest"
	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// stMetricsAddr is where the bench's plugin serves its metrics, inside the
// node's namespace.
const stMetricsAddr = "127.0.0.1:9338"

// stKind is one kind of network a container starts on.
type stKind struct {
	label   string
	network string // --network
}

func TestBenchStarts(t *testing.T) {
	mode := benchres.CurrentMode()
	if mode == benchres.Off {
		t.Skip("benchmark, not part of the suite: set MVS_BENCH=smoke or full (or run `make bench`)")
	}
	began := time.Now()
	rounds := mode.Pick(30, 2)

	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	img := lab.BusyboxImage(t, n)
	settings := []string{"METRICS_ADDR=" + stMetricsAddr}
	if !n.Engine().GlobalStandalone {
		// 20.10 refuses a global-scope driver outside swarm.
		settings = append(settings, "SCOPE=local")
	}
	n.InstallPluginFromDir(t, pluginRef, pluginDir, settings...)
	n.Exec(t, "ip", "link", "set", "lo", "up")

	kinds := []stKind{
		{"plugin", "bs-plugin"},
		{"built-in macvlan", "bs-macvlan"},
		{"bridge network", "bs-bridge"},
		{"default bridge", "bridge"},
		{"none", "none"},
	}
	n.Docker(t, "network", "create", "-d", pluginRef, "--subnet", "10.96.1.0/24", "--gateway", "10.96.1.1",
		"-o", "parent="+n.LANLink, "bs-plugin")
	n.Docker(t, "network", "create", "-d", "macvlan", "--subnet", "10.96.2.0/24", "--gateway", "10.96.2.1",
		"-o", "parent="+n.LANLink, "bs-macvlan")
	n.Docker(t, "network", "create", "-d", "bridge", "--subnet", "10.96.3.0/24", "bs-bridge")
	t.Cleanup(func() { _, _, _ = n.DockerErr("network", "rm", "bs-plugin", "bs-macvlan", "bs-bridge") })
	engine := n.Docker(t, "version", "-f", "{{.Server.Version}}")

	start := func(k stKind) (time.Duration, error) {
		t0 := time.Now()
		_, stderr, err := n.DockerErr("run", "--rm", "--network", k.network, img, "true")
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %s", k.label, err, strings.TrimSpace(stderr))
		}
		return time.Since(t0), nil
	}
	// One start of each, not counted: images, caches and the plugin's
	// first request are warm before the clock runs.
	for _, k := range kinds {
		if _, err := start(k); err != nil {
			t.Fatalf("warm-up: %v", err)
		}
	}

	before := stScrape(t, n)
	times := map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		for i := range kinds {
			k := kinds[(i+r)%len(kinds)]
			d, err := start(k)
			if err != nil {
				t.Fatalf("round %d: %v", r+1, err)
			}
			times[k.label] = append(times[k.label], d)
		}
	}
	after := stScrape(t, n)

	// Time inside the plugin for the plugin's starts: every request it
	// answered between the two scrapes (only its network's starts reach it).
	var inside float64
	var perMethod []string
	for key, v := range after {
		method, ok := strings.CutPrefix(key, "macvlan_swarm_request_duration_seconds/")
		if !ok || !strings.HasSuffix(method, "#sum") {
			continue
		}
		d := (v - before[key]) * 1000 / float64(rounds)
		inside += d
		if d > 0.0005 {
			perMethod = append(perMethod, fmt.Sprintf("%s %.2f ms", strings.TrimSuffix(method, "#sum"), d))
		}
	}
	slices.Sort(perMethod)

	ms := func(ds []time.Duration) []float64 { return benchres.Ms(ds) }
	// cost is the kind's start minus the none start of the same round.
	cost := func(label string) []float64 {
		out := make([]float64, rounds)
		for r := range rounds {
			out[r] = ms(times[label])[r] - ms(times["none"])[r]
		}
		return out
	}
	med := func(label string) float64 { return benchres.Median(ms(times[label])) }
	costPlugin := benchres.Median(cost("plugin"))

	part := benchres.Part{N: 1, Title: "container start, standalone", Engine: engine}
	part.Add(benchres.Figure{Name: "`docker run --rm … true`", Label: "plugin", Value: med("plugin"), Unit: "ms",
		Peer: "built-in macvlan", PeerValue: med("built-in macvlan"), Samples: rounds})
	part.Add(benchres.Figure{Name: "`docker run --rm … true`, no networking", Label: "none", Value: med("none"), Unit: "ms", Samples: rounds})
	part.Add(benchres.Figure{Name: "networking cost (start − none start)", Label: "plugin", Value: costPlugin, Unit: "ms",
		Peer: "built-in macvlan", PeerValue: benchres.Median(cost("built-in macvlan")), Samples: rounds,
		Target: &benchres.Target{Of: "ratio", Op: "<=", Limit: 0.9}})
	part.Add(benchres.Figure{Name: "networking cost (start − none start)", Label: "plugin", Value: costPlugin, Unit: "ms",
		Peer: "bridge network", PeerValue: benchres.Median(cost("bridge network")), Samples: rounds,
		Target: &benchres.Target{Of: "ratio", Op: "<=", Limit: 1.0}})
	part.Add(benchres.Figure{Name: "networking cost (start − none start)", Label: "default bridge",
		Value: benchres.Median(cost("default bridge")), Unit: "ms", Samples: rounds})
	part.Add(benchres.Figure{Name: "time inside the plugin per start", Label: "plugin", Value: inside, Unit: "ms",
		Peer: "its networking cost", PeerValue: costPlugin, Samples: rounds,
		Target: &benchres.Target{Of: "ratio", Op: "<=", Limit: 0.05},
		Note:   "the plugin's own request timings (metrics), all methods: " + strings.Join(perMethod, ", ")})
	part.Add(benchres.Figure{Name: "the engine's time around the plugin", Label: "plugin", Value: costPlugin - inside, Unit: "ms", Samples: rounds})
	for _, k := range kinds {
		part.AddSeries(benchres.Series{Chart: "starts", Title: "docker run --rm … true, standalone engine " + engine,
			Kind: "dist", Label: k.label, Unit: "ms", Value: ms(times[k.label])})
	}
	for _, k := range kinds[:4] {
		part.AddSeries(benchres.Series{Chart: "networking-cost", Title: "networking cost of a start: start − none start, median over rounds",
			Kind: "bar", Label: k.label, Unit: "ms", Value: cost(k.label)})
	}
	part.Seconds = time.Since(began).Seconds()
	for _, f := range part.Figures {
		t.Logf("%-45s %-16s %8.2f %-3s peer %-20s %8.2f", f.Name, f.Label, f.Value, f.Unit, f.Peer, f.PeerValue)
	}
	t.Logf("inside the plugin per start: %s", strings.Join(perMethod, ", "))
	path, err := benchres.Write(part)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("part 1 of make bench written to %s", path)
}

func stScrape(t *testing.T, n *lab.Node) map[string]float64 {
	t.Helper()
	var m map[string]float64
	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, "the plugin's metrics", func() error {
		var err error
		m, err = telemetrytest.Scrape(n.NetNS, stMetricsAddr)
		return err
	})
	return m
}
