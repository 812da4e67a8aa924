//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// TestLabThreeNodeSwarm checks the lab itself: three engines in their own
// namespaces, each with a differently named LAN link, form one swarm under
// three distinct node names.
func TestLabThreeNodeSwarm(t *testing.T) {
	lans := []string{"eth0", "ens18", "lan0"}
	l := lab.New(t, lab.Options{Nodes: 3, LANNames: lans})
	for i, n := range l.Nodes {
		if links := n.LinkNames(t); !slices.Contains(links, lans[i]) {
			t.Errorf("%s: links %v, want one named %s", n.Name, links, lans[i])
		}
		if out := n.Exec(t, "ip", "-4", "-o", "addr", "show", "dev", lans[i]); !strings.Contains(out, " "+n.Addr+"/24 ") {
			t.Errorf("%s: %s lacks %s/24: %s", n.Name, lans[i], n.Addr, out)
		}
	}

	began := time.Now()
	l.InitSwarm(t, 1, 2)
	t.Logf("swarm of 3 formed in %v", time.Since(began).Round(time.Millisecond))

	out := l.Node(1).Docker(t, "node", "ls", "--format", "{{.Hostname}} {{.Status}} {{.ManagerStatus}}")
	lines := strings.Split(out, "\n")
	if len(lines) != 3 {
		t.Fatalf("docker node ls: %d nodes, want 3:\n%s", len(lines), out)
	}
	seen := map[string]bool{}
	managers := 0
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) < 2 || f[1] != "Ready" {
			t.Errorf("node not Ready: %q", line)
			continue
		}
		if seen[f[0]] {
			t.Errorf("hostname %s listed twice:\n%s", f[0], out)
		}
		seen[f[0]] = true
		if len(f) == 3 {
			managers++
		}
	}
	for _, n := range l.Nodes {
		if !seen[n.Name] {
			t.Errorf("node %s missing from docker node ls:\n%s", n.Name, out)
		}
	}
	if managers != 1 {
		t.Errorf("%d managers, want 1:\n%s", managers, out)
	}
}

// TestLabRestartKillRegistry checks the node life cycle helpers and the
// registry on a one-node lab: an image pushed to the lab registry comes
// back after a crash and a restart, and a killed engine's container is
// found stopped on the next start.
func TestLabRestartKillRegistry(t *testing.T) {
	l := lab.New(t, lab.Options{Nodes: 2})
	n1, n2 := l.Node(1), l.Node(2)
	img := lab.BusyboxImage(t, n1)

	reg := l.StartRegistry(t)
	ref := reg + "/mvs/busybox:1"
	n1.Docker(t, "tag", img, ref)
	n1.Docker(t, "push", ref)
	n2.Docker(t, "pull", ref)
	if out := n2.Docker(t, "run", "--rm", ref, "hostname"); out == "" {
		t.Errorf("container on %s printed no hostname", n2.Name)
	}

	n1.Docker(t, append([]string{"run", "-d", "--name", "long", img}, lab.Sleeper...)...)
	n1.Kill(t)
	if n1.Running() {
		t.Fatal("node1 still running after Kill")
	}
	if _, _, err := n1.DockerErr("info"); err == nil {
		t.Fatal("docker info answered after Kill")
	}
	n1.Start(t)
	lab.Eventually(t, 20*time.Second, 200*time.Millisecond, "container stopped after crash", func() error {
		if st := n1.Docker(t, "inspect", "-f", "{{.State.Status}}", "long"); st != "exited" {
			return fmt.Errorf("state %q, want exited", st)
		}
		return nil
	})
	n1.Docker(t, "start", "long")
	began := time.Now()
	n1.Restart(t)
	t.Logf("restart with one running container took %v", time.Since(began).Round(time.Millisecond))
	if got := n1.Docker(t, "info", "--format", "{{.Name}}"); got != "node1" {
		t.Errorf("engine name %q after restart, want node1", got)
	}
	n1.Docker(t, "pull", ref)
}

// TestLabTeardownAfterKill checks that a lab whose engine was killed, with
// a container still running under its shim, leaves nothing behind: no
// process, namespace, mount or directory.
func TestLabTeardownAfterKill(t *testing.T) {
	var dir string
	var namespaces []string
	var pids []int
	t.Run("lab", func(t *testing.T) {
		l := lab.New(t, lab.Options{Nodes: 1})
		n := l.Node(1)
		dir, namespaces = l.Dir, []string{l.LANNS, n.NetNS}
		img := lab.BusyboxImage(t, n)
		n.Docker(t, append([]string{"run", "-d", "--name", "orphan", img}, lab.Sleeper...)...)
		pid, err := strconv.Atoi(n.Docker(t, "inspect", "-f", "{{.State.Pid}}", "orphan"))
		if err != nil || pid <= 1 {
			t.Fatalf("container pid %d: %v", pid, err)
		}
		pids = append(pids, pid, parentPid(t, pid))
		n.Kill(t)
		if !processExists(pid) {
			t.Fatal("container process gone right after Kill; want it to outlive the engine as after a crash")
		}
	})
	for _, pid := range pids {
		if processExists(pid) {
			t.Errorf("pid %d still running after teardown", pid)
		}
	}
	for _, ns := range namespaces {
		if _, err := os.Stat("/run/netns/" + ns); err == nil {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	if _, err := os.Stat(dir); err == nil {
		t.Errorf("lab directory %s left behind", dir)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), dir) {
		t.Errorf("mounts under %s left behind", dir)
	}
}

func parentPid(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			p, _ := strconv.Atoi(strings.TrimSpace(v))
			return p
		}
	}
	t.Fatalf("no PPid for %d", pid)
	return 0
}

// processExists is false for a process that is gone or a zombie.
func processExists(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// TestLabPluginVariant: a second plugin from the same build directory is
// refused by the engine (its rootfs layer is already held), and one from
// VariantPluginDir is accepted and enabled beside the first.
func TestLabPluginVariant(t *testing.T) {
	dir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	n.InstallPluginFromDir(t, "mvs-first:latest", dir)

	if _, errOut, err := n.DockerErr("plugin", "create", "mvs-same:latest", dir); err == nil {
		t.Log("engine accepted a second plugin from the same rootfs; VariantPluginDir is not needed on this engine")
	} else if !strings.Contains(errOut, "already exists") {
		t.Errorf("second plugin from the same directory: %v: %s (want an \"already exists\" refusal)", err, errOut)
	}

	n.InstallPluginFromDir(t, "mvs-second:latest", lab.VariantPluginDir(t, dir), "LOG_LEVEL=debug")
	out := n.Docker(t, "plugin", "ls", "--format", "{{.Name}} {{.Enabled}}")
	for _, want := range []string{"mvs-first:latest true", "mvs-second:latest true"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugin ls lacks %q:\n%s", want, out)
		}
	}
}
