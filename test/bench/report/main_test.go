package main

import (
	"bytes"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
)

func sampleParts(t *testing.T, dir string) {
	t.Helper()
	t.Setenv("MVS_BENCH_OUT", dir)
	t.Setenv("MVS_BENCH", "full")
	p1 := benchres.Part{N: 1, Title: "container start", Engine: "20.10.24"}
	p1.Add(benchres.Figure{Name: "networking cost", Label: "plugin", Value: 90, Unit: "ms", Peer: "built-in", PeerValue: 100,
		Target: &benchres.Target{Of: "ratio", Op: "<=", Limit: 0.9}, Samples: 30})
	p1.Add(benchres.Figure{Name: "time inside the plugin", Label: "plugin", Value: 6, Unit: "ms",
		Target: &benchres.Target{Of: "value", Op: "<=", Limit: 4.5}, Note: "from its metrics"})
	p1.AddSeries(benchres.Series{Chart: "starts", Title: "docker run", Kind: "dist", Label: "plugin", Unit: "ms", Value: []float64{1, 2, 3, 4, 50}})
	p1.AddSeries(benchres.Series{Chart: "starts", Title: "docker run", Kind: "dist", Label: "none", Unit: "ms", Value: []float64{1, 1, 2}})
	p4 := benchres.Part{N: 4, Title: "data path"}
	p4.Add(benchres.Figure{Name: "throughput", Label: "plugin", Value: 9.5, Unit: "Gbit/s", Peer: "nodes", PeerValue: 10})
	p4.AddSeries(benchres.Series{Chart: "throughput", Title: "TCP", Kind: "bar", Label: "plugin", Unit: "Gbit/s", Value: []float64{9.5, 9.7}})
	p4.AddSeries(benchres.Series{Chart: "throughput", Title: "TCP", Kind: "bar", Label: "nodes", Unit: "Gbit/s", Value: []float64{10}})
	for _, p := range []benchres.Part{p1, p4} {
		if _, err := benchres.Write(p); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReportWritesTableAndCharts(t *testing.T) {
	in := t.TempDir()
	sampleParts(t, in)
	docs := filepath.Join(t.TempDir(), "bench.md")
	os.WriteFile(docs, []byte("# B\n\nbefore\n"+beginMarker+"\nold table\n"+endMarker+"\nafter\n"), 0o644)
	charts := filepath.Join(filepath.Dir(docs), "bench")
	var out, errb bytes.Buffer
	if code := run([]string{"-in", in, "-docs", docs, "-charts", charts, "-want", "1,4", "-check"}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	b, _ := os.ReadFile(docs)
	md := string(b)
	for _, want := range []string{
		"before\n" + beginMarker + "\n", endMarker + "\nafter\n",
		"| 1. container start | networking cost (n=30) | plugin 90 ms | built-in 100 ms | 0.900× | ≤ 0.9× | met |",
		"|  | time inside the plugin | plugin 6 ms |  |  | ≤ 4.5 ms | **missed** |",
		"| 4. data path | throughput | plugin 9.5 Gbit/s | nodes 10 Gbit/s | 0.950× |  |  |",
		"Targets met: 1 of 2.", "Engine: 20.10.24.", "full run",
		"Part 1, time inside the plugin: from its metrics",
		"![starts](bench/starts.png)", "![throughput](bench/throughput.png)",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the docs lack %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "old table") {
		t.Error("the old table is still there")
	}
	for _, name := range []string{"starts.png", "throughput.png"} {
		f, err := os.Open(filepath.Join(charts, name))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil || img.Bounds().Dx() < 100 {
			t.Errorf("%s: not a picture: %v", name, err)
		}
	}
}

func TestReportCheckFailsOnAMissingFigure(t *testing.T) {
	in := t.TempDir()
	sampleParts(t, in)
	var out, errb bytes.Buffer
	if code := run([]string{"-in", in, "-want", "1-4", "-check"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "part 2 was not produced") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	p := benchres.Part{N: 2, Title: "parallel"}
	p.Add(benchres.Figure{Name: "total", Value: math.NaN()})
	if _, err := benchres.Write(p); err != nil {
		t.Fatal(err)
	}
	errb.Reset()
	if code := run([]string{"-in", in, "-want", "1,2,4", "-check"}, &out, &errb); code != 1 || !strings.Contains(errb.String(), `"total"`) {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
	// Without -check the same run prints its table and succeeds.
	if code := run([]string{"-in", in}, &out, &errb); code != 0 {
		t.Fatalf("exit %d without -check", code)
	}
}

func TestReportRefusesMissingMarkersAndEmptyInput(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"-in", t.TempDir()}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "make bench") {
		t.Fatalf("empty input: exit %d, %q", code, errb.String())
	}
	in := t.TempDir()
	sampleParts(t, in)
	docs := filepath.Join(t.TempDir(), "x.md")
	os.WriteFile(docs, []byte("no markers\n"), 0o644)
	errb.Reset()
	if code := run([]string{"-in", in, "-docs", docs}, &out, &errb); code != 1 || !strings.Contains(errb.String(), "bench:table:begin") {
		t.Fatalf("no markers: exit %d, %q", code, errb.String())
	}
	if b, _ := os.ReadFile(docs); string(b) != "no markers\n" {
		t.Errorf("the file was changed: %q", b)
	}
	for _, bad := range []string{"x", "3-1", "0"} {
		if _, err := parseParts(bad); err == nil {
			t.Errorf("parseParts(%q) accepted", bad)
		}
	}
}
