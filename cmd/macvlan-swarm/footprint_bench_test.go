package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/pluginpush"
	"github.com/macvlan-swarm/macvlan-swarm/test/bench/benchres"
)

// TestBenchFootprint is part 8 of `make bench`: what the shipped plugin
// weighs and how soon it serves. It measures the build `make plugin` made
// (build/plugin, or $MVS_PLUGIN_DIR), not a test build: the rootfs on disk;
// the compressed layer a push uploads (built by the same code as
// `macvlan-swarm-push`); the time from the binary's start to a socket that
// accepts connections, and to its first answer, on an empty state in a fresh
// network namespace (what `docker plugin enable` waits for); its resident
// memory once it answers. It never asserts a time.
//
//	MVS_BENCH=full go test -count=1 -v -run '^TestBenchFootprint$' ./cmd/macvlan-swarm/
func TestBenchFootprint(t *testing.T) {
	mode := benchres.CurrentMode()
	if mode == benchres.Off {
		t.Skip("benchmark, not part of the suite: set MVS_BENCH=smoke or full (or run `make bench`)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root: the daemon runs in a network namespace of its own")
	}
	began := time.Now()
	dir := os.Getenv("MVS_PLUGIN_DIR")
	if dir == "" {
		dir = filepath.Join("..", "..", "build", "plugin")
	}
	rootfs := filepath.Join(dir, "rootfs")
	bin := filepath.Join(rootfs, "macvlan-swarm")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%v: run `make plugin` first (or set MVS_PLUGIN_DIR)", err)
	}
	var rootfsBytes int64
	err := filepath.Walk(rootfs, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rootfsBytes += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	binInfo, err := os.Stat(bin)
	if err != nil {
		t.Fatal(err)
	}
	pl, err := pluginpush.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	layers, err := pl.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("the plugin's layers: %v (%d)", err, len(layers))
	}
	layerBytes, err := layers[0].Size()
	if err != nil {
		t.Fatal(err)
	}

	lab := linktest.New(t)
	lab.Veth(t, "eth0", 0)
	starts := mode.Pick(20, 3)
	var listening, answering []time.Duration
	var rss []float64
	tmp := t.TempDir()
	for i := range starts {
		sock := filepath.Join(tmp, "p.sock")
		state := filepath.Join(tmp, fmt.Sprintf("state%d", i)) // an empty state every time
		t0 := time.Now()
		// nsenter execs the daemon in place: the pid is the daemon's.
		c := exec.Command("nsenter", "--net="+lab.Path(), bin, "-socket", sock, "-state-dir", state, "-log-level", "error")
		c.Stderr = os.Stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		for j := 0; ; j++ {
			if conn, err := net.Dial("unix", sock); err == nil {
				conn.Close()
				break
			}
			if j > 100000 {
				c.Process.Kill()
				c.Wait()
				t.Fatal("the daemon's socket never accepted a connection")
			}
			time.Sleep(50 * time.Microsecond)
		}
		listening = append(listening, time.Since(t0))
		post(t, unixClient(sock), "GetCapabilities", "")
		answering = append(answering, time.Since(t0))
		rss = append(rss, float64(rssKiB(t, c.Process.Pid))/1024)
		c.Process.Signal(os.Interrupt)
		c.Wait()
	}

	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	part := benchres.Part{N: 8, Title: "footprint"}
	part.Add(benchres.Figure{Name: "rootfs on disk", Label: "plugin", Value: mib(rootfsBytes), Unit: "MiB",
		Note: "one static binary; the binary alone is " + benchres.Num(mib(binInfo.Size())) + " MiB"})
	part.Add(benchres.Figure{Name: "compressed layer (what a push uploads)", Label: "plugin", Value: mib(layerBytes), Unit: "MiB",
		Peer: "rootfs", PeerValue: mib(rootfsBytes)})
	part.Add(benchres.Figure{Name: "binary start → socket accepts, p50", Label: "plugin", Value: benchres.Median(benchres.Ms(listening)), Unit: "ms", Samples: starts})
	part.Add(benchres.Figure{Name: "binary start → socket accepts, max", Label: "plugin", Value: benchres.Quantile(benchres.Ms(listening), 1), Unit: "ms", Samples: starts})
	part.Add(benchres.Figure{Name: "binary start → first answer, p50", Label: "plugin", Value: benchres.Median(benchres.Ms(answering)), Unit: "ms", Samples: starts})
	part.Add(benchres.Figure{Name: "resident memory, idle", Label: "plugin", Value: benchres.Median(rss), Unit: "MiB", Samples: starts})
	part.Seconds = time.Since(began).Seconds()
	for _, f := range part.Figures {
		t.Logf("%-42s %8s %s", f.Name, benchres.Num(f.Value), f.Unit)
	}
	path, err := benchres.Write(part)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("part 8 of make bench written to %s", path)
}
