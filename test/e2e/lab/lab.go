//go:build e2e

// Package lab builds a throw-away network of Docker engines for end-to-end
// tests: a "lan" network namespace holding a bridge, and per node a network
// namespace with one veth plugged into that bridge (the node's macvlan parent
// and its swarm link) and its own dockerd, containerd, data and exec roots.
// Nothing depends on the root namespace or on an engine already running on the
// machine; everything is removed by the test's cleanup.
//
//	l := lab.New(t, lab.Options{Nodes: 3, LANNames: []string{"eth0", "ens18", "lan0"}})
//	l.InitSwarm(t, 1, 2)
//	n := l.Node(1)
//	img := lab.BusyboxImage(t, n)
//	n.Docker(t, "run", "--rm", img, "true")
//
// Layout of a lab with id <id> (six hex digits):
//
//	/tmp/mvs-lab-<id>/            lab directory (owner, registry/, cli/)
//	/tmp/mvs-lab-<id>/node<K>/    data/, exec/, docker.sock, docker.pid, dockerd.log
//	/run/netns/mvs-<id>-lan       bridge br0, 10.99.0.1/24 (the registry listens here)
//	/run/netns/mvs-<id>-node<K>   LANNames[K-1] (default eth0) 10.99.0.(10+K)/24, lo
//
// Each dockerd runs as
//
//	nsenter --net=/run/netns/mvs-<id>-node<K> unshare --uts sh -c 'hostname node<K>; exec dockerd …'
//
// so its swarm node name (taken from the hostname: dockerd 20.10 has no flag
// for it, nor have swarm init and join) is node<K>. Node.dockerdArgs lists the
// flags and why. Only the network and UTS namespaces are the node's: files,
// processes and /sys are the machine's (/sys/class/net shows the root
// namespace's links; a plugin's container gets a /sys of its own and sees the
// node's).
//
// Driver tests: PluginDir builds the plugin (make plugin) once per process.
// Install it before forming the swarm: a plugin enabled later reaches the
// managers' view of the node ~20 s later (see WaitPluginListed). When a test
// fails, the tail of every node's dockerd log, where plugin output lands too,
// is written to the test log.
//
// Leftovers of runs killed before their cleanup (go test -timeout, ^C) are
// removed by `go run ./test/lab/cleanup` (or test/lab/cleanup.sh).
//
// Environment: MVS_LAB_KEEP=1 keeps the lab directory (logs) after teardown;
// MVS_LAB_DEBUG=1 starts dockerd with --debug; MVS_LAB_LOGLINES sets how many
// dockerd log lines a failed test prints per node (default 80); MVS_ENGINE
// (20.10, 26.1 or 28.5; default 20.10) picks the engine every node runs
// unless Options.Engines says otherwise (see Engine; 26.1 and 28.5 are
// fetched into /var/cache/mvs-engines, or MVS_ENGINE_CACHE, on first use);
// MVS_DOCKERD and MVS_DOCKER_CLI replace 20.10's /usr/sbin/dockerd and
// /usr/bin/docker; MVS_PLUGIN_DIR names a ready plugin directory instead of
// building one.
package lab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/macvlan-swarm/macvlan-swarm/test/lab/sweep"
)

// Addresses on the lab's LAN. Node K has LANPrefix.(10+K).
const (
	LANPrefix  = "10.99.0"
	LANSubnet  = LANPrefix + ".0/24"
	BridgeAddr = LANPrefix + ".1"
	bridgeName = "br0"
)

// Options describe a lab.
type Options struct {
	// Nodes is the number of engines (1 to 200).
	Nodes int
	// LANNames names each node's LAN link (its macvlan parent), node K
	// taking LANNames[K-1]; nodes past the end of the list get "eth0".
	LANNames []string
	// DockerdArgs are appended to every dockerd command line.
	DockerdArgs []string
	// Engines picks each node's engine, node K taking Engines[K-1]; nodes
	// past the end of the list, or given an Engine without a Name, run
	// CurrentEngine (MVS_ENGINE). Node.SetEngine changes it between a
	// Stop and a Start (an in-place upgrade on the same data root).
	Engines []Engine
}

// Lab is one running lab. Nodes are numbered from 1: Node(1) is Nodes[0].
type Lab struct {
	ID    string
	Dir   string
	LANNS string // name of the lan namespace under /run/netns
	Nodes []*Node

	opts      Options
	closeOnce sync.Once
	regMu     sync.Mutex
	registry  *registry
}

// tools the lab runs; the paths are where Debian's packages put them.
var (
	registryPath = "/usr/bin/docker-registry"
	busyboxPath  = "/bin/busybox"
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// requireHost skips when not root and fails when a tool is missing.
func requireHost(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("lab: end-to-end tests need root (network namespaces, dockerd)")
	}
	var missing []string
	for _, p := range []string{"nsenter", "unshare", "ip", "/bin/sh"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("lab: missing %s (apt-get install -y docker.io iproute2 util-linux busybox-static docker-registry)", strings.Join(missing, ", "))
	}
}

// New builds the lab and starts every node's engine, waiting until each
// answers. Teardown is registered with t.Cleanup.
func New(t testing.TB, opts Options) *Lab {
	t.Helper()
	requireHost(t)
	if opts.Nodes < 1 || opts.Nodes > 200 {
		t.Fatalf("lab: Nodes = %d, want 1 to 200", opts.Nodes)
	}
	engines := make([]Engine, opts.Nodes)
	for i := range engines {
		if i < len(opts.Engines) && opts.Engines[i].Name != "" {
			engines[i] = opts.Engines[i]
		} else {
			engines[i] = CurrentEngine(t)
		}
		requireEngine(t, engines[i])
	}
	began := time.Now()

	l := &Lab{opts: opts}
	if err := l.makeDir(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	l.LANNS = sweep.NetNS(l.ID, "lan")
	// Registered first so that it runs last, after the log dump below and
	// after whatever the test registers later.
	t.Cleanup(func() { l.close(t) })
	t.Cleanup(func() {
		if t.Failed() {
			l.DumpLogs(t)
		}
	})

	if err := l.buildLAN(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	for k := 1; k <= opts.Nodes; k++ {
		n, err := l.addNode(k, engines[k-1])
		if err != nil {
			t.Fatalf("lab: node%d: %v", k, err)
		}
		l.Nodes = append(l.Nodes, n)
	}
	netDone := time.Now()
	l.startAll(t)
	var names []string
	for _, n := range l.Nodes {
		names = append(names, n.Name+"="+n.Engine().Name)
	}
	t.Logf("lab %s: %d node(s) up in %v (network %v, engines %v): %s", l.ID, opts.Nodes,
		time.Since(began).Round(time.Millisecond), netDone.Sub(began).Round(time.Millisecond),
		time.Since(netDone).Round(time.Millisecond), strings.Join(names, " "))
	return l
}

// Node returns node k, counting from 1.
func (l *Lab) Node(k int) *Node {
	if k < 1 || k > len(l.Nodes) {
		panic(fmt.Sprintf("lab: no node %d (lab has %d)", k, len(l.Nodes)))
	}
	return l.Nodes[k-1]
}

func (l *Lab) makeDir() error {
	for range 20 {
		var b [3]byte
		if _, err := rand.Read(b[:]); err != nil {
			return err
		}
		id := hex.EncodeToString(b[:])
		dir := sweep.Dir(id)
		if err := os.Mkdir(dir, 0o755); err != nil {
			if errors.Is(err, os.ErrExist) {
				continue
			}
			return err
		}
		if _, err := os.Stat(filepath.Join(sweep.NetNSDir, sweep.NetNS(id, "lan"))); err == nil {
			// A namespace of an earlier run with the same id is still
			// there; pick another id rather than touch it.
			os.Remove(dir)
			continue
		}
		l.ID, l.Dir = id, dir
		if err := sweep.WriteOwner(dir); err != nil {
			return err
		}
		return os.MkdirAll(filepath.Join(dir, "cli"), 0o700)
	}
	return errors.New("could not pick a free lab id")
}

// buildLAN makes the lan namespace with its bridge.
func (l *Lab) buildLAN() error {
	return runAll(
		[]string{"ip", "netns", "add", l.LANNS},
		[]string{"ip", "-n", l.LANNS, "link", "set", "lo", "up"},
		[]string{"ip", "-n", l.LANNS, "link", "add", bridgeName, "type", "bridge"},
		[]string{"ip", "-n", l.LANNS, "addr", "add", BridgeAddr + "/24", "dev", bridgeName},
		[]string{"ip", "-n", l.LANNS, "link", "set", bridgeName, "up"},
	)
}

// requireEngine fails t when an engine's dockerd or CLI is missing.
func requireEngine(t testing.TB, e Engine) {
	t.Helper()
	for _, p := range []string{e.Dockerd, e.CLI} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("lab: engine %s: %v (20.10: apt-get install -y docker.io; others: scripts/ensure-engines.sh %s)", e.Name, err, e.Name)
		}
	}
}

func (l *Lab) addNode(k int, e Engine) (*Node, error) {
	lan := "eth0"
	if k <= len(l.opts.LANNames) && l.opts.LANNames[k-1] != "" {
		lan = l.opts.LANNames[k-1]
	}
	n := &Node{
		Index:   k,
		Name:    "node" + strconv.Itoa(k),
		NetNS:   sweep.NetNS(l.ID, "node"+strconv.Itoa(k)),
		Dir:     filepath.Join(l.Dir, "node"+strconv.Itoa(k)),
		Addr:    fmt.Sprintf("%s.%d", LANPrefix, 10+k),
		LANLink: lan,
		lab:     l,
		engine:  e,
	}
	n.Host = "unix://" + filepath.Join(n.Dir, "docker.sock")
	cli, err := client.NewClientWithOpts(client.WithHost(n.Host), client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	n.cli = cli
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return nil, err
	}
	// An empty config file keeps /etc/docker/daemon.json (a developer's)
	// out of the lab.
	if err := os.WriteFile(filepath.Join(n.Dir, "daemon.json"), []byte("{}\n"), 0o644); err != nil {
		return nil, err
	}
	port := "port" + strconv.Itoa(k)
	err = runAll(
		[]string{"ip", "netns", "add", n.NetNS},
		[]string{"ip", "-n", n.NetNS, "link", "set", "lo", "up"},
		[]string{"ip", "-n", l.LANNS, "link", "add", port, "type", "veth", "peer", "name", lan, "netns", n.NetNS},
		[]string{"ip", "-n", l.LANNS, "link", "set", port, "master", bridgeName, "up"},
		[]string{"ip", "-n", n.NetNS, "addr", "add", n.Addr + "/24", "dev", lan},
		[]string{"ip", "-n", n.NetNS, "link", "set", lan, "up"},
	)
	return n, err
}

// startAll starts every engine at once and waits for all of them.
func (l *Lab) startAll(t testing.TB) {
	t.Helper()
	errs := make([]error, len(l.Nodes))
	Parallel(len(l.Nodes), func(i int) { errs[i] = l.Nodes[i].start() })
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// Parallel runs f(0) … f(n-1) at once and waits for all.
func Parallel(n int, f func(i int)) {
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i)
		}()
	}
	wg.Wait()
}

// DumpLogs writes the tail of every node's dockerd log (plugin output is in
// there too) and of the registry log to the test log.
func (l *Lab) DumpLogs(t testing.TB) {
	t.Helper()
	lines := 80
	if v, err := strconv.Atoi(os.Getenv("MVS_LAB_LOGLINES")); err == nil && v > 0 {
		lines = v
	}
	for _, n := range l.Nodes {
		t.Logf("lab: last %d lines of %s (%s):\n%s", lines, n.LogPath(), n.Name, tailFile(n.LogPath(), lines))
	}
	if r := l.registry; r != nil {
		t.Logf("lab: last %d lines of %s:\n%s", lines, r.log, tailFile(r.log, lines))
	}
}

// close stops everything the lab started and removes its namespaces, mounts
// and directory. It runs once, from t.Cleanup.
func (l *Lab) close(t testing.TB) {
	l.closeOnce.Do(func() {
		began := time.Now()
		// Clear every node out, then stop workers before managers: a
		// worker whose managers are gone spends seconds in timeouts on its
		// way out of the swarm.
		managers := make([]bool, len(l.Nodes))
		Parallel(len(l.Nodes), func(i int) { managers[i] = l.Nodes[i].clearOut() })
		for _, phase := range []bool{false, true} {
			Parallel(len(l.Nodes), func(i int) {
				n := l.Nodes[i]
				if managers[i] != phase {
					return
				}
				began := time.Now()
				if err := n.stop(); err != nil {
					t.Errorf("lab: teardown of %s: %v", n.Name, err)
				}
				t.Logf("lab: %s stopped in %v", n.Name, time.Since(began).Round(time.Millisecond))
			})
		}
		l.stopRegistry()
		keep := os.Getenv("MVS_LAB_KEEP") != ""
		err := sweep.Lab(l.Dir, sweep.Options{Keep: keep}, func(format string, args ...any) {
			t.Logf("lab: sweep: "+format, args...)
		})
		if err != nil {
			t.Errorf("lab: teardown: %v", err)
		}
		if keep {
			t.Logf("lab: kept %s (MVS_LAB_KEEP)", l.Dir)
		}
		t.Logf("lab %s: torn down in %v", l.ID, time.Since(began).Round(time.Millisecond))
	})
}

// runAll runs each command in turn, stopping at the first failure.
func runAll(cmds ...[]string) error {
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(c, " "), err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// tailFile returns the last n lines of a file (or why it could not).
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Eventually calls f every interval until it returns nil or timeout passes,
// then fails the test with f's last error.
func Eventually(t testing.TB, timeout, interval time.Duration, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v: %v", what, timeout, err)
		}
		time.Sleep(interval)
	}
}

// Steps returns a function that logs how long each step of a test took:
// step("swarm formed") logs the time since the previous call (or since
// Steps). For the reader of the log only; tests never assert on time.
func Steps(t testing.TB) func(what string) {
	last := time.Now()
	return func(what string) {
		t.Helper()
		now := time.Now()
		t.Logf("step: %s in %v", what, now.Sub(last).Round(time.Millisecond))
		last = now
	}
}
