//go:build e2e

package lab

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"
)

const swarmReadyTimeout = 90 * time.Second

// InitSwarm makes a swarm of the first managers+workers nodes: node1 inits
// it (advertising its LAN address), the next managers-1 nodes join as
// managers, the next workers nodes as workers. It returns when node1 lists
// every member as Ready.
func (l *Lab) InitSwarm(t testing.TB, managers, workers int) {
	t.Helper()
	if managers < 1 || managers+workers > len(l.Nodes) {
		t.Fatalf("lab: InitSwarm(%d managers, %d workers) on a lab of %d nodes", managers, workers, len(l.Nodes))
	}
	leader := l.Nodes[0]
	swarmInit(t, leader)
	managerToken := leader.Docker(t, "swarm", "join-token", "-q", "manager")
	workerToken := leader.Docker(t, "swarm", "join-token", "-q", "worker")
	join := leader.Addr + ":2377"
	// One at a time: each join changes the raft membership (managers) or
	// asks the managers for a certificate (workers).
	for i, n := range l.Nodes[1 : managers+workers] {
		token := workerToken
		if i+1 < managers {
			token = managerToken
		}
		n.Docker(t, "swarm", "join", "--token", token,
			"--advertise-addr", n.Addr, "--listen-addr", n.Addr+":2377", join)
	}
	WaitNodesReady(t, leader, l.Nodes[:managers+workers]...)
}

// SingleNodeSwarm makes n the only node (and manager) of a new swarm: on the
// 20.10 engine a global-scope plugin network needs swarm mode, and
// --attachable networks then serve plain `docker run` too.
func SingleNodeSwarm(t testing.TB, n *Node) {
	t.Helper()
	swarmInit(t, n)
	WaitNodesReady(t, n, n)
}

func swarmInit(t testing.TB, n *Node) {
	t.Helper()
	n.Docker(t, "swarm", "init", "--advertise-addr", n.Addr, "--listen-addr", n.Addr+":2377")
}

// WaitNodesReady waits until manager lists every one of nodes (by hostname)
// as Ready, and fails the test with the last listing if that takes more
// than 90 s.
func WaitNodesReady(t testing.TB, manager *Node, nodes ...*Node) {
	t.Helper()
	want := map[string]bool{}
	for _, n := range nodes {
		want[n.Name] = true
	}
	Eventually(t, swarmReadyTimeout, 250*time.Millisecond, "swarm nodes ready", func() error {
		out, errOut, err := manager.DockerErr("node", "ls", "--format", "{{.Hostname}} {{.Status}}")
		if err != nil {
			return fmt.Errorf("docker node ls: %v: %s", err, errOut)
		}
		ready := map[string]bool{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[1] == "Ready" {
				ready[f[0]] = true
			}
		}
		var missing []string
		for name := range want {
			if !ready[name] {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			return fmt.Errorf("not ready: %s; node ls:\n%s", strings.Join(missing, ", "), out)
		}
		return nil
	})
}

// pluginListedTimeout bounds WaitPluginListed. A node's engine reports a
// newly enabled plugin to the managers only with its next description
// update, about 20 s later on 20.10.
const pluginListedTimeout = 60 * time.Second

// WaitPluginListed waits until manager sees the network plugin (by its
// full name, e.g. "macvlan-swarm:latest") in the description of every one
// of nodes. Until then the scheduler places no task on a node that lacks
// it ("no suitable node (missing plugin on 1 node)") and `docker run` on an
// attachable network stalls.
//
// A plugin enabled before the node joins (or inits) the swarm is listed at
// once; one enabled later is listed only with the node's next description
// update, ~20 s later. Install plugins before forming the swarm when the
// test allows it.
func WaitPluginListed(t testing.TB, manager *Node, plugin string, nodes ...*Node) {
	t.Helper()
	names := make([]string, 0, len(nodes))
	for _, n := range nodes {
		names = append(names, n.Name)
	}
	Eventually(t, pluginListedTimeout, 250*time.Millisecond, "plugin "+plugin+" listed by the swarm", func() error {
		args := append([]string{"node", "inspect", "-f",
			`{{.Description.Hostname}}{{range .Description.Engine.Plugins}} {{.Type}}={{.Name}}{{end}}`}, names...)
		out, errOut, err := manager.DockerErr(args...)
		if err != nil {
			return fmt.Errorf("docker node inspect: %v: %s", err, errOut)
		}
		var missing []string
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			found := false
			for _, p := range f[1:] {
				if p == "Network="+plugin {
					found = true
				}
			}
			if !found {
				missing = append(missing, f[0])
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("not listed on %s", strings.Join(missing, ", "))
		}
		return nil
	})
}
