//go:build e2e

package e2e

// A swarm of two engine versions, and a worker upgraded in place:
//
//	go test -tags e2e -count=1 -v -run TestMixedSwarmUpgrade ./test/e2e/   # MVS_ENGINE=28.5
//
// It picks its nodes' engines itself (manager 28.5, worker 20.10, then 28.5)
// and runs in the 28.5 stream of the matrix only.

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// mixedTasks is the dnsrr service's replica count, at most half of them per
// node: with one node down the other takes its half and the rest wait, so
// the upgraded worker gets its tasks back.
const mixedTasks = 4

// TestMixedSwarmUpgrade: a manager on engine 28.5 and a worker on 20.10, the
// plugin installed on both from the lab registry. A dnsrr service spreads
// over both nodes with cluster-unique addresses and its tasks reach each
// other by address and through tasks.<name>. Then the worker is upgraded
// the way an operator would: its engine stopped while the service runs,
// 28.5 started on the same data root, exec root and socket. Its tasks come
// back and work, the addresses stay unique, and neither node keeps a host
// link of the driver or a plugin record (GET /status) of a task that is gone.
func TestMixedSwarmUpgrade(t *testing.T) {
	lab.OnEngines(t, "28.5")
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	newer, older := lab.EngineNamed(t, "28.5"), lab.EngineNamed(t, "20.10")
	l := lab.New(t, lab.Options{Nodes: 2, LANNames: []string{"eth0", "ens18"}, Engines: []lab.Engine{newer, older}})
	mgr, wk := l.Node(1), l.Node(2)
	b := &swarmBench{l: l, mgr: mgr, subnet: netip.MustParsePrefix(swarmSubnet), pluginIDs: map[string]string{}}
	reg := l.StartRegistry(t)

	b.plugin = reg + "/macvlan-swarm:" + swarmPluginTag
	mgr.Docker(t, "plugin", "create", b.plugin, pluginDir)
	mgr.Docker(t, "plugin", "push", b.plugin)
	mgr.Docker(t, "plugin", "set", b.plugin, "LOG_LEVEL=debug", mgr.EngineRunSetting())
	mgr.Docker(t, "plugin", "enable", b.plugin)
	wk.Docker(t, "plugin", "install", "--grant-all-permissions", b.plugin, "LOG_LEVEL=debug", wk.EngineRunSetting())
	b.image = reg + "/mvs-busybox:1"
	mgr.Docker(t, "tag", lab.BusyboxImage(t, mgr), b.image)
	mgr.Docker(t, "push", b.image)
	l.InitSwarm(t, 1, 1)
	lab.WaitPluginListed(t, mgr, b.plugin, mgr, wk)
	mixedWantEngines(t, mgr, map[string]string{mgr.Name: "28.5", wk.Name: "20.10"})
	step("swarm: node1 on 28.5 (manager), node2 on 20.10 (worker), plugin from the registry")

	b.netID = mgr.Docker(t, "network", "create", "-d", b.plugin, "--attachable",
		"--subnet", swarmSubnet, "--gateway", swarmGateway, "-o", "parent=eth0|ens18", swarmNet)
	b.createService(t, svcRR, "--endpoint-mode", "dnsrr", "--replicas", strconv.Itoa(mixedTasks),
		"--replicas-max-per-node", strconv.Itoa(mixedTasks/2), "--", "sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait")
	t.Run("spread", func(t *testing.T) {
		mixedCheck(t, b, "before the upgrade")
	})
	step("dnsrr service over both versions")

	t.Run("worker_upgraded_in_place", func(t *testing.T) {
		oldID := b.mustPluginID(t, wk)
		marks := map[*lab.Node]int{mgr: lcLogMark(t, mgr), wk: lcLogMark(t, wk)}
		wk.Stop(t)
		step("worker's 20.10 stopped (SIGTERM) with the service running")
		wk.SetEngine(t, newer)
		wk.Start(t)
		lab.WaitNodesReady(t, mgr, wk)
		mixedWantEngines(t, mgr, map[string]string{mgr.Name: "28.5", wk.Name: "28.5"})
		if id := wk.Docker(t, "plugin", "inspect", "-f", "{{.Id}} {{.Enabled}}", b.plugin); id != oldID+" true" {
			t.Errorf("%s: plugin after the upgrade: %q, want the same plugin %s, enabled", wk.Name, id, oldID[:12])
		}
		step("worker on 28.5, same data root")
		mixedCheck(t, b, "after the worker's upgrade")
		// Neither the plugin nor the engine about the plugin complained
		// through the upgrade (the engine's own swarm warnings are not
		// the driver's).
		for n, mark := range marks {
			lcNoDriverErrors(t, n, mark)
		}
	})
}

// mixedCheck: every task running, half on each node, with unique addresses
// of the subnet; one task per node reaches every other task by address and
// resolves tasks.<service> to all of them; no node keeps a driver link in
// its namespace, and each node's plugin holds one network and exactly the
// endpoints of its running tasks.
func mixedCheck(t *testing.T, b *swarmBench, when string) {
	t.Helper()
	tasks := b.waitRunning(t, svcRR, mixedTasks)
	if per := perNode(tasks); per[b.l.Node(1).Name] != mixedTasks/2 || per[b.l.Node(2).Name] != mixedTasks/2 {
		t.Fatalf("%s: tasks per node %v, want %d on each", when, per, mixedTasks/2)
	}
	b.checkUnique(t)
	ips := taskIPs(tasks)
	for _, n := range b.l.Nodes {
		cs := b.attached(t, n)
		if len(cs) != mixedTasks/2 {
			t.Fatalf("%s: %s runs %d containers on %s, want %d: %v", when, n.Name, len(cs), swarmNet, mixedTasks/2, cs)
		}
		for _, ip := range ips {
			if ip != cs[0].IP.String() {
				b.ping(t, n, cs[0], ip)
			}
		}
		lab.Eventually(t, swarmWait, 250*time.Millisecond, n.Name+": tasks."+svcRR+" lists every task", func() error {
			out, errOut, err := n.DockerErr("exec", cs[0].ID, "nslookup", "tasks."+svcRR)
			if err != nil {
				return fmt.Errorf("nslookup: %v: %s %s", err, out, errOut)
			}
			if got := strings.Join(parseNslookup(out), " "); got != strings.Join(ips, " ") {
				return fmt.Errorf("tasks.%s resolves to %q, want %q", svcRR, got, strings.Join(ips, " "))
			}
			return nil
		})
		b.waitNoHostLinks(t, n)
		mixedNoRetired(t, n)
		mixedStatusMatches(t, b, n, cs)
	}
	t.Logf("%s: tasks %v", when, tasks)
}

// mixedStatusMatches waits until the plugin on n (GET /status) holds the
// bench network only and one endpoint per running task container there,
// with that container's address: nothing of a task that is gone.
func mixedStatusMatches(t *testing.T, b *swarmBench, n *lab.Node, cs []swarmCtr) {
	t.Helper()
	want := map[string]bool{}
	for _, c := range cs {
		want[c.IP.String()] = true
	}
	lab.Eventually(t, 30*time.Second, 250*time.Millisecond, n.Name+": plugin status = running tasks", func() error {
		st, err := n.StatusErr(t, b.plugin)
		if err != nil {
			return err
		}
		if len(st.Networks) != 1 || st.Networks[0].ID != b.netID {
			return fmt.Errorf("networks %+v, want only %s", st.Networks, b.netID)
		}
		got := map[string]bool{}
		for _, e := range st.Endpoints {
			ip, _, _ := strings.Cut(e.IPv4, "/")
			if !want[ip] || got[ip] {
				return fmt.Errorf("endpoint %s (%s, link %s) is not one of the running tasks %v: endpoints %+v", e.ID, e.IPv4, e.Link, cs, st.Endpoints)
			}
			got[ip] = true
		}
		if len(got) != len(want) {
			return fmt.Errorf("endpoints %+v, want one per running task %v", st.Endpoints, cs)
		}
		return nil
	})
}

// mixedNoRetired fails when a link of the node is in the driver's retire
// group (links waiting to be deleted) a while after the events.
func mixedNoRetired(t *testing.T, n *lab.Node) {
	t.Helper()
	group := strconv.Itoa(nbRetireGroup)
	hex := fmt.Sprintf("%#x", nbRetireGroup)
	lab.Eventually(t, 30*time.Second, 250*time.Millisecond, n.Name+": no link in the retire group", func() error {
		out := n.Exec(t, "ip", "-d", "-o", "link", "show")
		var left []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, " group "+group+" ") || strings.Contains(line, " group "+hex+" ") {
				left = append(left, strings.Fields(line)[1])
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("links in the retire group: %v", left)
		}
		return nil
	})
}

// mixedWantEngines checks, through the manager, which engine version each
// node runs (node inspect: Description.Engine.EngineVersion).
func mixedWantEngines(t *testing.T, mgr *lab.Node, want map[string]string) {
	t.Helper()
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "engine versions in the node list", func() error {
		out, errOut, err := mgr.DockerErr("node", "ls", "--format", "{{.Hostname}} {{.EngineVersion}}")
		if err != nil {
			return fmt.Errorf("docker node ls: %v: %s", err, errOut)
		}
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) == 2 && want[f[0]] != "" && !strings.HasPrefix(f[1], want[f[0]]+".") {
				return fmt.Errorf("%s runs engine %s, want %s.x:\n%s", f[0], f[1], want[f[0]], out)
			}
		}
		return nil
	})
}

// mustPluginID is the plugin's id on node n.
func (b *swarmBench) mustPluginID(t *testing.T, n *lab.Node) string {
	t.Helper()
	return n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", b.plugin)
}
