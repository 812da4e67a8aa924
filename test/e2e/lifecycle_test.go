//go:build e2e

package e2e

// The plugin life-cycle bench: what happens to networks and containers made
// through macvlan-swarm when the plugin or its engine goes away and comes
// back, is upgraded, or is replaced; and the packaging path from `make` to a
// registry to another node.
//
//	go test -tags e2e -count=1 -v -run TestLifecycle ./test/e2e/
//
// Every event is judged the same way (lcNet.checkSurvived): a NEW container
// joins the network made BEFORE the event and pings a container started
// before it, the old containers still reach each other, and removing them
// and the network leaves no host link of the driver ("mvs…") in the node's
// namespace and no error of the driver in the dockerd log.
//
// Two labs, run in parallel: TestLifecyclePlugin (one node: capabilities and
// state file, disable/enable, SIGKILL of the daemon, dockerd restarted and
// killed, upgrades, and at the end an empty state) and TestLifecyclePackaging
// (three nodes: make create + make push, install on a fresh node; make
// push-registry, install on another; make install twice, settings kept).

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// lcPlugin is the name the life-cycle bench installs the driver under.
const lcPlugin = "macvlan-swarm:latest"

// lcStateFile is the daemon's state file inside its propagated mount.
const lcStateFile = store.FileName

// lcNode is a lab node with the busybox image, on which the driver runs
// under the name plugin.
type lcNode struct {
	*lab.Node
	img    string
	plugin string
	parent string     // -o parent= of new networks; the LAN link when empty
	nets   pluginNets // swarm or standalone (engines_test.go); set with ready
}

// ready makes the node ready for networks of its plugin (a one-node swarm
// on 20.10, nothing on newer engines) and remembers how to make them.
func (n *lcNode) ready(t *testing.T) {
	t.Helper()
	n.nets = readyForPluginNets(t, n.Node, n.plugin)
}

// waitReady waits after a restart of the node's engine until its swarm (if
// any) counts the node Ready again.
func (n *lcNode) waitReady(t *testing.T) {
	t.Helper()
	if n.nets.Swarm {
		lab.WaitNodesReady(t, n.Node, n.Node)
	}
}

// lcNet is a network of the driver with the containers started on it.
type lcNet struct {
	n    *lcNode
	name string
	old  map[string]string // container name → address
}

// newNet creates a network (attachable on a swarm) on the node's LAN link, subnet
// 10.98.k.0/24, and starts one Sleeper container per name on it.
func (n *lcNode) newNet(t *testing.T, name string, k int, containers ...string) *lcNet {
	t.Helper()
	parent := n.parent
	if parent == "" {
		parent = n.LANLink
	}
	n.Docker(t, append(append([]string{"network", "create", "-d", n.plugin}, n.nets.Flags...),
		"--subnet", fmt.Sprintf("10.98.%d.0/24", k), "--gateway", fmt.Sprintf("10.98.%d.1", k),
		"-o", "parent="+parent, name)...)
	net := &lcNet{n: n, name: name, old: map[string]string{}}
	for _, c := range containers {
		net.old[c] = net.run(t, c)
	}
	return net
}

// run starts a Sleeper container on the network and returns its address.
func (net *lcNet) run(t *testing.T, name string, extra ...string) string {
	t.Helper()
	args := append([]string{"run", "-d", "--name", name, "--network", net.name}, extra...)
	net.n.Docker(t, append(append(args, net.n.img), lab.Sleeper...)...)
	return net.addr(t, name)
}

func (net *lcNet) addr(t *testing.T, container string) string {
	t.Helper()
	ip := net.n.Docker(t, "inspect", "-f",
		fmt.Sprintf(`{{(index .NetworkSettings.Networks %q).IPAddress}}`, net.name), container)
	if ip == "" || ip == "<no value>" {
		t.Fatalf("%s has no address on %s", container, net.name)
	}
	return ip
}

// checkSurvived is the verdict after an event: a new container joins the
// old network and reaches every old container by ping, and the old
// containers still reach each other.
func (net *lcNet) checkSurvived(t *testing.T) {
	t.Helper()
	n := net.n
	for c, ip := range net.old {
		out, errOut, err := n.DockerErr("run", "--rm", "--network", net.name, n.img, "ping", "-c", "1", "-W", "3", ip)
		if err != nil || !strings.Contains(out, "1 packets received") {
			t.Errorf("a new container on %s does not reach old container %s (%s): %v\n%s\n%s", net.name, c, ip, err, out, errOut)
		}
	}
	var names []string
	for c := range net.old {
		names = append(names, c)
	}
	for i := 1; i < len(names); i++ {
		from, to := names[i-1], names[i]
		out, errOut, err := n.DockerErr("exec", from, "ping", "-c", "1", "-W", "3", net.old[to])
		if err != nil || !strings.Contains(out, "1 packets received") {
			t.Errorf("old container %s does not reach old container %s (%s): %v\n%s\n%s", from, to, net.old[to], err, out, errOut)
		}
	}
}

// remove removes the old containers and the network, and checks that this
// went cleanly: no error from the driver in the dockerd log since mark, and
// no driver link left in the node's namespace.
func (net *lcNet) remove(t *testing.T, mark int) {
	t.Helper()
	n := net.n
	for c := range net.old {
		n.Docker(t, "rm", "-f", c)
	}
	n.Docker(t, "network", "rm", net.name)
	lcNoDriverLinks(t, n.Node)
	lcNoDriverErrors(t, n.Node, mark)
}

// lcDriverLinks lists the links of the driver's shape ("mvs…") in the
// node's namespace.
func lcDriverLinks(t *testing.T, n *lab.Node) []string {
	t.Helper()
	var left []string
	for _, name := range n.LinkNames(t) {
		if strings.HasPrefix(name, "mvs") {
			left = append(left, name)
		}
	}
	return left
}

// lcNoDriverLinks waits for the driver's deferred link deletion (batched a
// moment after the endpoint goes) and fails if a link is left.
func lcNoDriverLinks(t *testing.T, n *lab.Node) {
	t.Helper()
	lab.Eventually(t, 10*time.Second, 100*time.Millisecond, "no driver link left on "+n.Name, func() error {
		if left := lcDriverLinks(t, n); len(left) > 0 {
			return fmt.Errorf("links left in %s: %v", n.NetNS, left)
		}
		return nil
	})
}

// lcLogMark is the current length of the node's dockerd log: later checks
// look only at what was written after it.
func lcLogMark(t *testing.T, n *lab.Node) int {
	t.Helper()
	return len(n.Log(t))
}

func lcLogSince(t *testing.T, n *lab.Node, mark int) string {
	t.Helper()
	s := n.Log(t)
	if mark > len(s) {
		return ""
	}
	return s[mark:]
}

// lcNoDriverErrors fails on trouble of the driver in the dockerd log since
// mark: the daemon's own warnings and errors (slog level=WARN or ERROR, as
// the engine forwards them) and the engine's reports of a failed driver
// call ("remote: …" on 20.10, "NetworkDriver.…" on newer engines). The
// engine's own complaints about swarm attachments are not the driver's: an
// attachable overlay network gets the same on this engine.
func lcNoDriverErrors(t *testing.T, n *lab.Node, mark int) {
	t.Helper()
	var bad []string
	for _, line := range strings.Split(lcLogSince(t, n, mark), "\n") {
		engineTrouble := strings.Contains(line, "level=error") || strings.Contains(line, "level=warning")
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") ||
			(engineTrouble && (strings.Contains(line, "remote:") || strings.Contains(line, "NetworkDriver."))) {
			bad = append(bad, line)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%s: driver errors in the dockerd log:\n%s", n.Name, strings.Join(bad, "\n"))
	}
}

// restoredRE matches the daemon's start-up summary, as the engine forwards
// it into its log (quotes escaped).
var restoredRE = regexp.MustCompile(`state restored\\?"? networks=(\d+) endpoints=(\d+)`)

// lcRestored returns the counts of the last "state restored" line since
// mark, failing when the daemon did not start (again) since then.
// lcWantRestored waits for the daemon's "state restored" line after mark and
// checks that it restored wantNets networks and wantEps endpoints.
func lcWantRestored(t *testing.T, n *lab.Node, mark int, after string, wantNets, wantEps int) {
	t.Helper()
	nets, eps := lcRestored(t, n, mark)
	t.Logf("after %s the daemon restored %d network(s), %d endpoint(s)", after, nets, eps)
	if nets != wantNets || eps != wantEps {
		t.Errorf("after %s the daemon restored %d networks and %d endpoints, want %d and %d", after, nets, eps, wantNets, wantEps)
	}
}

func lcRestored(t *testing.T, n *lab.Node, mark int) (networks, endpoints int) {
	t.Helper()
	var m []string
	lab.Eventually(t, 15*time.Second, 100*time.Millisecond, "the daemon's state restored line", func() error {
		all := restoredRE.FindAllStringSubmatch(lcLogSince(t, n, mark), -1)
		if len(all) == 0 {
			return fmt.Errorf("no %q line in the dockerd log of %s since the event", "state restored", n.Name)
		}
		m = all[len(all)-1]
		return nil
	})
	networks, _ = strconv.Atoi(m[1])
	endpoints, _ = strconv.Atoi(m[2])
	return networks, endpoints
}

// lcPluginPid finds the daemon process of the plugin ref on node n: the
// process whose cgroup names the plugin's id (the engine runs a managed
// plugin as a containerd task named by that id), whose command line is
// /macvlan-swarm, and whose network namespace is the node's. It returns 0
// when there is none and fails the test when there are several.
func lcPluginPid(t *testing.T, n *lab.Node, ref string) (pid int, id string) {
	t.Helper()
	id = n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", ref)
	var nsStat syscall.Stat_t
	if err := syscall.Stat(n.NetNSPath(), &nsStat); err != nil {
		t.Fatalf("stat %s: %v", n.NetNSPath(), err)
	}
	wantNS := fmt.Sprintf("net:[%d]", nsStat.Ino)
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var found []int
	for _, p := range procs {
		cand, err := strconv.Atoi(filepath.Base(p))
		if err != nil || !lcIsPluginProcess(cand, id, wantNS) {
			continue
		}
		found = append(found, cand)
	}
	switch len(found) {
	case 0:
		return 0, id
	case 1:
		return found[0], id
	}
	t.Fatalf("%s: %d processes of plugin %s: %v", n.Name, len(found), id[:12], found)
	return 0, id
}

// lcIsPluginProcess checks, from /proc, that pid is the driver's daemon of
// the plugin with this id in the namespace wantNS ("net:[inode]").
func lcIsPluginProcess(pid int, id, wantNS string) bool {
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil || !bytes.Contains(cg, []byte(id)) {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || string(cmdline) != "/macvlan-swarm\x00" {
		return false
	}
	ns, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid))
	if err != nil || ns != wantNS {
		return false
	}
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(st, ')')
	return i >= 0 && i+2 < len(st) && st[i+2] != 'Z'
}

// lcWaitPluginUp waits until the plugin is enabled and its daemon runs as a
// process other than oldPid, and returns the new pid.
func lcWaitPluginUp(t *testing.T, n *lab.Node, ref string, oldPid int) int {
	t.Helper()
	var pid int
	lab.Eventually(t, 30*time.Second, 100*time.Millisecond, "plugin "+ref+" enabled with a new process", func() error {
		out, errOut, err := n.DockerErr("plugin", "inspect", "-f", "{{.Enabled}}", ref)
		if err != nil {
			return fmt.Errorf("plugin inspect: %v: %s", err, errOut)
		}
		if out != "true" {
			return fmt.Errorf("enabled = %s", out)
		}
		pid, _ = lcPluginPid(t, n, ref)
		if pid == 0 || pid == oldPid {
			return fmt.Errorf("daemon pid %d (before: %d)", pid, oldPid)
		}
		return nil
	})
	return pid
}

// lcCapEff reads a process's effective capability set.
func lcCapEff(t *testing.T, pid int) uint64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read status of %d: %v", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			c, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			if err != nil {
				t.Fatalf("CapEff %q: %v", v, err)
			}
			return c
		}
	}
	t.Fatalf("no CapEff in /proc/%d/status", pid)
	return 0
}

// lcStatePath is where the engine keeps plugin id's propagated mount and in
// it the daemon's state file: <data root>/plugins/<id>/propagated-mount.
func lcStatePath(t *testing.T, n *lab.Node, id string) string {
	t.Helper()
	root := n.Docker(t, "info", "-f", "{{.DockerRootDir}}")
	return filepath.Join(root, "plugins", id, "propagated-mount", lcStateFile)
}

// lcSetup starts a lab of nodes engines, imports busybox into each and
// returns them; the driver is not installed.
func lcSetup(t *testing.T, nodes int) (*lab.Lab, []*lcNode) {
	t.Helper()
	l := lab.New(t, lab.Options{Nodes: nodes})
	var ns []*lcNode
	for _, n := range l.Nodes {
		ns = append(ns, &lcNode{Node: n, img: lab.BusyboxImage(t, n), plugin: lcPlugin})
	}
	return l, ns
}

// lcDockerArg is the DOCKER value the Makefile and scripts/install.sh get:
// the CLI matching the node's engine, pointed at node n.
func lcDockerArg(n *lab.Node) string {
	return n.Engine().CLI + " -H " + n.Host
}

// lcMake runs `make -C <repo> args…` and returns its output. With netns
// set it runs inside that network namespace (nsenter --net), so that the
// daemonless push reaches the lab registry. The docker CLI configuration is
// the lab's own, never ~/.docker; make variables of an enclosing make (make
// test) are dropped so that only args count.
func lcMake(t *testing.T, l *lab.Lab, netns string, args ...string) string {
	t.Helper()
	root := lab.RepoRoot(t)
	argv := append([]string{"make", "--no-print-directory", "-C", root}, args...)
	if netns != "" {
		argv = append([]string{"nsenter", "--net=" + netns, "--"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG",
			"DOCKER_API_VERSION", "MAKEFLAGS", "MFLAGS", "MAKELEVEL":
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, "DOCKER_CONFIG="+filepath.Join(l.Dir, "cli"))
	began := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	t.Logf("%s (%v):\n%s", strings.Join(args, " "), time.Since(began).Round(time.Millisecond), strings.TrimSpace(string(out)))
	return string(out)
}

// TestLifecyclePlugin drives one node through the events a plugin lives
// through, each with a network and containers of its own: the driver's
// privileges and state file, disable/enable, a crash of the daemon, a
// restart and a crash of dockerd, and two upgrades from the lab registry.
// The subtests share the node (and its swarm) but not their networks; each
// checks that the state holds only its own network, the last that nothing
// is left.
func TestLifecyclePlugin(t *testing.T) {
	t.Parallel()
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l, nodes := lcSetup(t, 1)
	n := nodes[0]
	// Before any swarm: its first node description then lists the plugin.
	n.InstallPluginFromDir(t, lcPlugin, pluginDir)
	n.ready(t)
	step("lab, plugin, engine " + n.Engine().Name + ", swarm " + strconv.FormatBool(n.nets.Swarm))

	// config.json asks for CAP_NET_ADMIN, CAP_NET_RAW and the host network,
	// nothing else; the daemon runs with a plain container's capabilities
	// plus those two and keeps its state file in the propagated mount.
	t.Run("privileges and state file", func(t *testing.T) {
		caps := n.Docker(t, "plugin", "inspect", "-f", "{{json .Config.Linux.Capabilities}}", lcPlugin)
		if caps != `["CAP_NET_ADMIN","CAP_NET_RAW"]` {
			t.Errorf("config capabilities %s, want only CAP_NET_ADMIN and CAP_NET_RAW", caps)
		}
		// One mount: the engine's exec root, read-only and non-recursive,
		// where the daemon watches sandbox files (reclaim.go).
		cfg := strings.Fields(n.Docker(t, "plugin", "inspect", "-f",
			"{{.Config.Network.Type}} {{.Config.PropagatedMount}} {{len .Config.Mounts}} {{.Config.PidHost}} {{.Config.IpcHost}} {{len .Config.Linux.Devices}} {{.Config.Linux.AllowAllDevices}}", lcPlugin))
		if strings.Join(cfg, " ") != "host /state 1 false false 0 false" {
			t.Errorf("network type, propagated mount, mounts, pidhost, ipchost, devices, all devices = %v; want host /state 1 false false 0 false", cfg)
		}
		if m := n.Docker(t, "plugin", "inspect", "-f", `{{range .Config.Mounts}}{{.Name}} {{.Destination}} {{join .Options ","}}{{end}}`, lcPlugin); m != "engine-run /engine-run bind,ro" {
			t.Errorf("mount = %q, want engine-run /engine-run bind,ro (read-only, not recursive)", m)
		}
		pid, id := lcPluginPid(t, n.Node, lcPlugin)
		if pid == 0 {
			t.Fatalf("no daemon process found for plugin %s", id)
		}
		// The engine starts a plugin with its default container set plus
		// what config.json asks for: compare with a plain container's.
		// CAP_NET_RAW (bit 13) is in the engine's default set already;
		// config.json lists it so that the plugin keeps it should that change.
		const capNetAdmin = 1<<12 | 1<<13
		out := n.Docker(t, "run", "--rm", n.img, "grep", "CapEff", "/proc/self/status")
		base, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(out, "CapEff:")), 16, 64)
		if err != nil {
			t.Fatalf("a container's CapEff %q: %v", out, err)
		}
		if c := lcCapEff(t, pid); c != base|capNetAdmin {
			t.Errorf("daemon pid %d: effective capabilities %#x, want a container's default set %#x plus CAP_NET_ADMIN and CAP_NET_RAW (%#x): extra %#x",
				pid, c, base, capNetAdmin, c&^(base|capNetAdmin))
		}
		t.Logf("a plain container's CapEff %#x; the daemon's %#x (CAP_NET_ADMIN and CAP_NET_RAW added, nothing else)", base, lcCapEff(t, pid))
		path := lcStatePath(t, n.Node, id)
		st, err := os.Stat(path)
		if err != nil {
			t.Fatalf("state file: %v", err)
		}
		t.Logf("daemon pid %d, state file %s (%d bytes)", pid, path, st.Size())
	})
	step("privileges and state file")

	t.Run("disable -f and enable", func(t *testing.T) {
		mark := lcLogMark(t, n.Node)
		net := n.newNet(t, "lc-toggle", 1, "t1", "t2")
		oldPid, _ := lcPluginPid(t, n.Node, lcPlugin)
		n.Docker(t, "plugin", "disable", "-f", lcPlugin)
		if pid, _ := lcPluginPid(t, n.Node, lcPlugin); pid != 0 {
			t.Errorf("daemon pid %d still running after disable", pid)
		}
		// The links are the kernel's: traffic between running containers
		// does not need the daemon.
		if out, errOut, err := n.DockerErr("exec", "t1", "ping", "-c", "1", "-W", "3", net.old["t2"]); err != nil {
			t.Errorf("t1 → t2 while the plugin is disabled: %v\n%s\n%s", err, out, errOut)
		}
		restartMark := lcLogMark(t, n.Node)
		n.Docker(t, "plugin", "enable", lcPlugin)
		newPid := lcWaitPluginUp(t, n.Node, lcPlugin, oldPid)
		t.Logf("daemon pid %d → %d", oldPid, newPid)
		lcWantRestored(t, n.Node, restartMark, "disable and enable", 1, 2)
		net.checkSurvived(t)
		net.remove(t, mark)
	})
	step("disable -f and enable")

	t.Run("daemon killed", func(t *testing.T) {
		mark := lcLogMark(t, n.Node)
		net := n.newNet(t, "lc-kill", 2, "k1", "k2")
		oldPid, id := lcPluginPid(t, n.Node, lcPlugin)
		if oldPid == 0 {
			t.Fatal("no daemon process to kill")
		}
		// Checked again just before the signal: the pid is still that
		// plugin's daemon in this node.
		var nsStat syscall.Stat_t
		if err := syscall.Stat(n.NetNSPath(), &nsStat); err != nil {
			t.Fatal(err)
		}
		if !lcIsPluginProcess(oldPid, id, fmt.Sprintf("net:[%d]", nsStat.Ino)) {
			t.Fatalf("pid %d is no longer the daemon of plugin %s", oldPid, id[:12])
		}
		killMark := lcLogMark(t, n.Node)
		if err := syscall.Kill(oldPid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill -9 %d: %v", oldPid, err)
		}
		began := time.Now()
		newPid := lcWaitPluginUp(t, n.Node, lcPlugin, oldPid)
		t.Logf("daemon pid %d killed, engine started pid %d within %v", oldPid, newPid, time.Since(began).Round(time.Millisecond))
		lcWantRestored(t, n.Node, killMark, "SIGKILL", 1, 2)
		net.checkSurvived(t)
		net.remove(t, mark)
	})
	step("daemon killed")

	t.Run("dockerd restarted", func(t *testing.T) {
		mark := lcLogMark(t, n.Node)
		net := n.newNet(t, "lc-restart", 3, "r1", "r2")
		// r3 asks the engine to bring it back by itself.
		net.old["r3"] = net.run(t, "r3", "--restart", "always")
		before := map[string]string{}
		for c, ip := range net.old {
			before[c] = ip
		}
		restartMark := lcLogMark(t, n.Node)
		n.Restart(t)
		step("dockerd restarted")
		// A clean stop tells the driver about every container it stops
		// (Leave, DeleteEndpoint) and drops the network on this node
		// (DeleteNetwork): the daemon starts with nothing stale.
		nets, eps := lcRestored(t, n.Node, restartMark)
		t.Logf("the daemon started with the engine: restored %d network(s), %d endpoint(s)", nets, eps)
		if eps != 0 {
			t.Errorf("the daemon restored %d endpoint(s) after a clean restart; the engine stopped every container, want 0", eps)
		}
		n.waitReady(t)
		if out, want := n.Docker(t, "network", "ls", "--filter", "name=lc-restart", "--format", "{{.Name}} {{.Driver}} {{.Scope}}"), "lc-restart "+lcPlugin+" "+n.nets.Scope; out != want {
			t.Errorf("network after restart: %q, want %s", out, want)
		}
		state := func(c string) string {
			return n.Docker(t, "inspect", "-f", "{{.State.Status}} {{.State.Error}}", c)
		}
		t.Logf("after restart: r1 %q, r2 %q, r3 %q", state("r1"), state("r2"), state("r3"))
		// Containers stopped by the shutdown left their endpoints: no
		// host link of theirs may be left.
		if left := lcDriverLinks(t, n.Node); len(left) > 0 {
			t.Errorf("driver links left in the node namespace after the restart: %v", left)
		}
		lab.Eventually(t, 30*time.Second, 250*time.Millisecond, "r3 running again (restart always)", func() error {
			if s := state("r3"); !strings.HasPrefix(s, "running") {
				return fmt.Errorf("r3: %s", s)
			}
			return nil
		})
		n.Docker(t, "start", "r1", "r2")
		for c := range net.old {
			net.old[c] = net.addr(t, c)
			t.Logf("%s: address %s before the restart, %s after", c, before[c], net.old[c])
		}
		net.checkSurvived(t)
		net.remove(t, mark)
	})
	step("dockerd restarted")

	// A crash of the engine (dockerd and its containerd SIGKILLed): the
	// containers and the plugin's daemon outlive it, as they would a real
	// crash, and the next start has to sort them out.
	t.Run("dockerd killed", func(t *testing.T) {
		mark := lcLogMark(t, n.Node)
		net := n.newNet(t, "lc-crash", 8, "c1", "c2")
		net.old["c3"] = net.run(t, "c3", "--restart", "always")
		oldPid, _ := lcPluginPid(t, n.Node, lcPlugin)
		startMark := lcLogMark(t, n.Node)
		n.Kill(t)
		n.Start(t)
		n.waitReady(t)
		newPid := lcWaitPluginUp(t, n.Node, lcPlugin, -1)
		state := func(c string) string {
			return n.Docker(t, "inspect", "-f", "{{.State.Status}} {{.State.Error}}", c)
		}
		t.Logf("after the crash: daemon pid %d (before: %d); c1 %q, c2 %q, c3 %q", newPid, oldPid, state("c1"), state("c2"), state("c3"))
		// The engine had no chance to tell the driver anything: the saved
		// network and endpoints come back; the endpoints go with the
		// network (checked by "nothing left in the state").
		nets, eps := lcRestored(t, n.Node, startMark)
		t.Logf("the daemon started again: restored %d network(s), %d endpoint(s)", nets, eps)
		if nets != 1 {
			t.Errorf("restored %d networks after the crash, want 1", nets)
		}
		if out := n.Docker(t, "network", "ls", "--filter", "name=lc-crash", "--format", "{{.Name}} {{.Driver}}"); out != "lc-crash "+lcPlugin {
			t.Errorf("network after the crash: %q, want lc-crash %s", out, lcPlugin)
		}
		lab.Eventually(t, 30*time.Second, 250*time.Millisecond, "c3 running again (restart always)", func() error {
			if s := state("c3"); !strings.HasPrefix(s, "running") {
				return fmt.Errorf("c3: %s", s)
			}
			return nil
		})
		for _, c := range []string{"c1", "c2"} {
			if s := state(c); !strings.HasPrefix(s, "running") {
				n.Docker(t, "start", c)
			}
		}
		for c := range net.old {
			net.old[c] = net.addr(t, c)
		}
		net.checkSurvived(t)
		net.remove(t, mark)
	})
	step("dockerd killed")

	t.Run("upgrade from the registry", func(t *testing.T) {
		reg := l.StartRegistry(t)
		mark := lcLogMark(t, n.Node)
		net := n.newNet(t, "lc-upgrade", 4, "u1", "u2")
		_, idBefore := lcPluginPid(t, n.Node, lcPlugin)
		descBefore := n.Docker(t, "plugin", "inspect", "-f", "{{.Config.Description}}", lcPlugin)

		// A newer build (another version stamped in the binary and in
		// config.json's description), pushed by the daemonless command.
		build := t.TempDir()
		lcMake(t, l, "", "plugin", "push-tool", "BUILD_DIR="+build, "VERSION=lifecycle-next")
		next := reg + "/macvlan-swarm:next"
		push := exec.Command("nsenter", "--net="+n.NetNSPath(), "--",
			filepath.Join(build, "macvlan-swarm-push"), "-insecure", "-dir", filepath.Join(build, "plugin"), next)
		push.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(l.Dir, "cli"))
		if out, err := push.CombinedOutput(); err != nil {
			t.Fatalf("macvlan-swarm-push %s: %v\n%s", next, err, out)
		}

		oldPid, _ := lcPluginPid(t, n.Node, lcPlugin)
		n.Docker(t, "plugin", "disable", "-f", lcPlugin)
		// A user's setting, to see whether upgrades keep it.
		n.Docker(t, "plugin", "set", lcPlugin, "LOG_LEVEL=debug")
		out, errOut, err := n.DockerStdinErr("y\n", "plugin", "upgrade", "--grant-all-permissions", lcPlugin, next)
		if err != nil {
			t.Fatalf("docker plugin upgrade: %v\n%s\n%s", err, errOut, out)
		}
		t.Logf("docker plugin upgrade:\n%s\n%s", out, errOut)
		upMark := lcLogMark(t, n.Node)
		n.Docker(t, "plugin", "enable", lcPlugin)
		lcWaitPluginUp(t, n.Node, lcPlugin, oldPid)
		lcWantRestored(t, n.Node, upMark, "docker plugin upgrade", 1, 2)
		info := n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}|{{.PluginReference}}|{{.Config.Description}}", lcPlugin)
		f := strings.Split(info, "|")
		if len(f) != 3 {
			t.Fatalf("plugin inspect: %q", info)
		}
		t.Logf("before: id %s, %q\nafter:  id %s, reference %s, %q", idBefore[:12], descBefore, f[0][:12], f[1], f[2])
		if f[0] != idBefore {
			t.Errorf("plugin id changed by the upgrade: %s → %s", idBefore, f[0])
		}
		if f[1] != next {
			t.Errorf("plugin reference %q after upgrade, want %q", f[1], next)
		}
		if !strings.Contains(f[2], "(version lifecycle-next)") {
			t.Errorf("description %q after upgrade, want the new build's version lifecycle-next", f[2])
		}
		keptDebug := func(after string) {
			t.Helper()
			if env := n.Docker(t, "plugin", "inspect", "-f", "{{json .Settings.Env}}", lcPlugin); !strings.Contains(env, `"LOG_LEVEL=debug"`) {
				t.Errorf("setting LOG_LEVEL=debug lost by %s: %s", after, env)
			}
		}
		keptDebug("docker plugin upgrade")
		if !strings.Contains(lcLogSince(t, n.Node, upMark), "version=lifecycle-next") {
			t.Errorf("the daemon started after the upgrade did not log version=lifecycle-next")
		}
		net.checkSurvived(t)

		// The same through the Makefile: `make upgrade` builds, pushes
		// without an engine (from inside the node's namespace, where the
		// registry is), disables, upgrades and enables.
		oldPid, _ = lcPluginPid(t, n.Node, lcPlugin)
		upMark = lcLogMark(t, n.Node)
		lcMake(t, l, n.NetNSPath(), "upgrade", "BUILD_DIR="+t.TempDir(), "VERSION=lifecycle-next2",
			"DOCKER="+lcDockerArg(n.Node), "PLUGIN_NAME=macvlan-swarm", "PLUGIN_TAG=latest",
			"PUSH_REF="+reg+"/macvlan-swarm:next2", "PUSH_FLAGS=-insecure")
		lcWaitPluginUp(t, n.Node, lcPlugin, oldPid)
		lcWantRestored(t, n.Node, upMark, "make upgrade", 1, 2)
		if d := n.Docker(t, "plugin", "inspect", "-f", "{{.Config.Description}}", lcPlugin); !strings.Contains(d, "(version lifecycle-next2)") {
			t.Errorf("description %q after make upgrade, want version lifecycle-next2", d)
		}
		keptDebug("make upgrade")
		net.checkSurvived(t)
		net.remove(t, mark)
	})
	step("upgrades")

	// Everything above removed its containers and networks: the saved
	// state must be empty again, or some event left stale records.
	t.Run("nothing left in the state", func(t *testing.T) {
		// No -f: no network may use it now. The engine drops a swarm
		// network's hold on the plugin a moment after `docker network rm`
		// returns ("plugin … is in use" until then).
		began := time.Now()
		lab.Eventually(t, 30*time.Second, 200*time.Millisecond, "plugin disable without -f", func() error {
			_, errOut, err := n.DockerErr("plugin", "disable", lcPlugin)
			if err != nil {
				return fmt.Errorf("%v: %s", err, errOut)
			}
			return nil
		})
		t.Logf("plugin disabled (no -f) %v after the last network was removed", time.Since(began).Round(time.Millisecond))
		mark := lcLogMark(t, n.Node)
		n.Docker(t, "plugin", "enable", lcPlugin)
		// Every subtest removed its own containers and networks.
		lcWantRestored(t, n.Node, mark, "every subtest removed its own", 0, 0)
		lcNoDriverLinks(t, n.Node)
	})
}

// TestLifecyclePackaging follows the plugin from the Makefile to other
// nodes: `make create` + `make push` (through node1's engine) installed on
// fresh node2, `make push-registry` (no engine) installed on fresh node3,
// and `make install` run twice on node1 with a network in use in between.
func TestLifecyclePackaging(t *testing.T) {
	t.Parallel()
	step := lab.Steps(t)
	lab.PluginDir(t) // skips while the daemon does not exist yet
	l, nodes := lcSetup(t, 3)
	reg := l.StartRegistry(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	step("lab of 3, registry")

	// Each subtest builds into a directory of its own: they run at the
	// same time, and every build target starts by emptying the rootfs.
	enginePushed := reg + "/macvlan-swarm:e2e"
	t.Run("make create and make push", func(t *testing.T) {
		vars := []string{"BUILD_DIR=" + t.TempDir(), "DOCKER=" + lcDockerArg(n1.Node),
			"PLUGIN_NAME=" + reg + "/macvlan-swarm", "PLUGIN_TAG=e2e"}
		lcMake(t, l, "", append([]string{"create"}, vars...)...)
		if got := n1.Docker(t, "plugin", "inspect", "-f", "{{.Name}} {{.Enabled}}", enginePushed); got != enginePushed+" false" {
			t.Errorf("after make create: %q, want %s created disabled", got, enginePushed)
		}
		lcMake(t, l, "", append([]string{"push"}, vars...)...)
	})
	step("make create, make push")

	// A fresh node's engine pulls a plugin and uses it: installed before
	// the node forms its (single-node) swarm.
	// With grant false the install prompt is answered "y", and it must ask
	// for the host network, CAP_NET_ADMIN and CAP_NET_RAW, nothing else.
	useInstalled := func(t *testing.T, n *lcNode, ref string, k int, grant bool) {
		t.Helper()
		var out string
		if grant {
			out = n.Docker(t, "plugin", "install", "--grant-all-permissions", ref, n.EngineRunSetting())
		} else {
			out = n.DockerStdin(t, "y\n", "plugin", "install", ref, n.EngineRunSetting())
			var asked []string
			for _, line := range strings.Split(out, "\n") {
				if p, ok := strings.CutPrefix(strings.TrimSpace(line), "- "); ok {
					asked = append(asked, p)
				}
			}
			if strings.Join(asked, "; ") != "network: [host]; mount: [/var/run/docker]; capabilities: [CAP_NET_ADMIN CAP_NET_RAW]" {
				t.Errorf("install asked for %q, want the host network, the engine-run mount, CAP_NET_ADMIN and CAP_NET_RAW only", asked)
			}
		}
		t.Logf("%s: docker plugin install %s:\n%s", n.Name, ref, out)
		if got := n.Docker(t, "plugin", "inspect", "-f", "{{.Enabled}} {{json .Config.Linux.Capabilities}}", ref); got != `true ["CAP_NET_ADMIN","CAP_NET_RAW"]` {
			t.Errorf("installed plugin: enabled, capabilities = %s; want true [\"CAP_NET_ADMIN\",\"CAP_NET_RAW\"]", got)
		}
		n.plugin = ref
		n.ready(t)
		mark := lcLogMark(t, n.Node)
		net := n.newNet(t, "lc-installed", k, "i1", "i2")
		net.checkSurvived(t)
		net.remove(t, mark)
	}

	t.Run("installs", func(t *testing.T) {
		t.Run("engine push installed on node2", func(t *testing.T) {
			t.Parallel()
			useInstalled(t, n2, enginePushed, 5, true)
		})

		t.Run("daemonless push installed on node3, prompt answered", func(t *testing.T) {
			t.Parallel()
			ref := reg + "/macvlan-swarm:dl"
			// Inside node1's namespace: the registry is on the lab's LAN.
			lcMake(t, l, n1.NetNSPath(), "push-registry", "BUILD_DIR="+t.TempDir(),
				"PUSH_REF="+ref, "PUSH_FLAGS=-insecure")
			useInstalled(t, n3, ref, 6, false)
		})

		// make install replaces the plugin (rm + create) and carries its
		// state file over: a network made with the first copy keeps working
		// with the second.
		t.Run("make install twice", func(t *testing.T) {
			t.Parallel()
			vars := []string{"BUILD_DIR=" + t.TempDir(), "DOCKER=" + lcDockerArg(n1.Node)}
			lcMake(t, l, "", append([]string{"install"}, vars...)...)
			// The user's settings: an alias for this node's LAN link, used
			// by the networks, and a log level.
			settings := []string{"PARENTS=lan=" + n1.LANLink, "LOG_LEVEL=debug"}
			n1.Docker(t, "plugin", "disable", lcPlugin)
			n1.Docker(t, append([]string{"plugin", "set", lcPlugin}, settings...)...)
			n1.Docker(t, "plugin", "enable", lcPlugin)
			n1.ready(t)
			mark := lcLogMark(t, n1.Node)
			n1.parent = "lan"
			net := n1.newNet(t, "lc-install", 7, "m1", "m2")
			_, oldID := lcPluginPid(t, n1.Node, lcPlugin)

			installMark := lcLogMark(t, n1.Node)
			out := lcMake(t, l, "", append([]string{"install"}, vars...)...)
			if !strings.Contains(out, "carrying the saved networks and endpoints over") {
				t.Errorf("scripts/install.sh did not say it carried the state over")
			}
			pid, newID := lcPluginPid(t, n1.Node, lcPlugin)
			if pid == 0 {
				t.Fatalf("no daemon running after the second make install")
			}
			if newID == oldID {
				t.Errorf("plugin id %s unchanged: make install did not replace the plugin", newID[:12])
			}
			if _, err := os.Stat(lcStatePath(t, n1.Node, newID)); err != nil {
				t.Errorf("state file of the new copy: %v", err)
			}
			if _, err := os.Stat(filepath.Dir(filepath.Dir(lcStatePath(t, n1.Node, oldID)))); err == nil {
				t.Errorf("the old copy's directory %s is still there", oldID[:12])
			}
			t.Logf("plugin %s replaced by %s", oldID[:12], newID[:12])
			lcWantRestored(t, n1.Node, installMark, "make install", 1, 2)
			env := n1.Docker(t, "plugin", "inspect", "-f", "{{json .Settings.Env}}", lcPlugin)
			for _, kv := range settings {
				if !strings.Contains(env, `"`+kv+`"`) {
					t.Errorf("setting %s lost by make install: the new copy has %s", kv, env)
				}
			}
			net.checkSurvived(t)
			// A new network naming the alias: only the kept PARENTS
			// setting resolves it.
			net2 := n1.newNet(t, "lc-install-new", 9, "m3")
			net.remove(t, mark)
			net2.remove(t, mark)
		})
	})
	step("installs")
}
