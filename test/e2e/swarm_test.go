//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/swarm"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// Names and addresses of the swarm bench (TestSwarmBench).
const (
	swarmPluginTag  = "0.0.0-e2e"
	swarmNet        = "mvlan"
	swarmSubnet     = "10.98.0.0/24"
	swarmGateway    = "10.98.0.1"
	swarmParentSpec = "eth0|ens18|lan"

	svcGlobal = "mvs-g"   // --mode global: one task per node, the pingers
	svcRep    = "mvs-r"   // replicated, scaled 3 → 30 → 3
	svcWeb    = "mvs-web" // VIP mode (the default), serves HTTP
	svcRR     = "mvs-rr"  // --endpoint-mode dnsrr, serves HTTP

	swarmWait = 2 * time.Minute // bounds a hung engine; nothing asserts on time
)

// swarmWeb is a task command serving its hostname over HTTP on port 80 that
// exits at once on SIGTERM.
var swarmWeb = []string{"sh", "-c", "mkdir -p /www && hostname > /www/index.html && trap 'exit 0' TERM; httpd -f -p 80 -h /www & wait"}

type swarmBench struct {
	l      *lab.Lab
	plugin string // <registry>/macvlan-swarm:<tag>
	image  string // <registry>/mvs-busybox:1
	netID  string
	subnet netip.Prefix
	mgr    *lab.Node // a manager whose engine is up

	pluginIDs map[string]string // node name → plugin id
}

// TestSwarmBench runs the plugin the way a swarm operator would: one lab of
// three engines whose LAN links are named differently (node1 eth0, node2
// ens18, node3 lan0), the plugin pushed once from node1 to the lab registry
// and installed from there on the other two with --grant-all-permissions,
// node3 with PARENTS=lan=lan0. The network's parent is 'eth0|ens18|lan', so
// node1 and node2 resolve it through the candidate list and node3 through
// its alias.
//
// The subtests run in order on that one swarm, each starting from the state
// the one before left (the last ones with three managers), so the first
// failure stops the bench:
//
//	spread           global service: one task per node, unique addresses, own parent, full ping mesh
//	scale            3 → 30 → 3 replicas: unique, all reachable, no host link or record left
//	drain            a drained node's tasks move off it and it is left clean
//	worker_crash     a worker's dockerd killed and restarted: its task back, no host link left
//	dns              dnsrr and tasks.<name> resolve and reach; VIP resolves (not reachable: reported)
//	refusal          a parent found on node3 only: the other nodes' refusals in service ps
//	leader_failover  leader stopped: AllocateNetwork on the new leader, no address clash, rejoin
//	stack            docker stack deploy, external network and stack-made network
//	network_rm       nothing left on any node: network, host or VLAN link, plugin state
func TestSwarmBench(t *testing.T) {
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 3, LANNames: []string{"eth0", "ens18", "lan0"}})
	b := &swarmBench{l: l, mgr: l.Node(1), subnet: netip.MustParsePrefix(swarmSubnet), pluginIDs: map[string]string{}}
	reg := l.StartRegistry(t)
	step("lab and registry up")

	// Push once from node1, install from the registry everywhere else.
	n1, n2, n3 := l.Node(1), l.Node(2), l.Node(3)
	b.plugin = reg + "/macvlan-swarm:" + swarmPluginTag
	n1.Docker(t, "plugin", "create", b.plugin, pluginDir)
	n1.Docker(t, "plugin", "push", b.plugin)
	n1.Docker(t, "plugin", "set", b.plugin, "LOG_LEVEL=debug")
	n1.Docker(t, "plugin", "enable", b.plugin)
	n2.Docker(t, "plugin", "install", "--grant-all-permissions", b.plugin, "LOG_LEVEL=debug")
	n3.Docker(t, "plugin", "install", "--grant-all-permissions", b.plugin, "LOG_LEVEL=debug", "PARENTS=lan=lan0")
	step("plugin pushed from node1, installed on node2 and node3")

	b.image = reg + "/mvs-busybox:1"
	n1.Docker(t, "tag", lab.BusyboxImage(t, n1), b.image)
	n1.Docker(t, "push", b.image)
	step("busybox image pushed")

	// Swarm formed after the plugin is enabled: the managers list it at once.
	l.InitSwarm(t, 1, 2)
	lab.WaitPluginListed(t, n1, b.plugin, l.Nodes...)
	step("swarm of 1 manager + 2 workers, plugin listed")

	// As docs/swarm.md recommends: addresses from the plugin's own
	// address manager (--ipam-driver).
	b.netID = n1.Docker(t, "network", "create", "-d", b.plugin, "--ipam-driver", b.plugin, "--attachable",
		"--subnet", swarmSubnet, "--gateway", swarmGateway, "-o", "parent="+swarmParentSpec, swarmNet)
	step("network created")

	for _, s := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"spread", b.testSpread},
		{"scale", b.testScale},
		{"drain", b.testDrain},
		{"worker_crash", b.testWorkerCrash},
		{"dns", b.testDNS},
		{"refusal", b.testRefusal},
		{"leader_failover", b.testLeaderFailover},
		{"stack", b.testStack},
		{"network_rm", b.testNetworkRemove},
	} {
		if !t.Run(s.name, s.run) {
			t.Logf("%s failed; the later subtests build on its state and are not run", s.name)
			return
		}
	}
}

// testSpread: a global service gets one task per node, each with an address
// from the subnet, unique in the cluster, on that node's own parent, and
// every task reaches every other node's task.
func (b *swarmBench) testSpread(t *testing.T) {
	began := time.Now()
	b.createService(t, svcGlobal, "--mode", "global")
	b.createService(t, svcRep, "--replicas", "3")
	b.waitRunning(t, svcGlobal, 3, b.l.Nodes...)
	b.waitRunning(t, svcRep, 3)
	t.Logf("global service (3 tasks) and 3 replicas running in %v", time.Since(began).Round(time.Millisecond))

	g := b.globalTasks(t)
	for _, n := range b.l.Nodes {
		c := g[n.Name]
		if !b.subnet.Contains(c.IP) || c.IP.String() == swarmGateway {
			t.Errorf("%s: task address %s, want one of %s other than the gateway", n.Name, c.IP, swarmSubnet)
		}
		b.checkParent(t, n, c)
	}
	b.checkUnique(t)

	for _, from := range b.l.Nodes {
		for _, to := range b.l.Nodes {
			if from != to {
				b.ping(t, from, g[from.Name], g[to.Name].IP.String())
			}
		}
	}
	t.Logf("addresses: node1 %s, node2 %s, node3 %s; every task pinged the other two",
		g["node1"].IP, g["node2"].IP, g["node3"].IP)
}

// testScale: 30 replicas, then 3 again; addresses stay unique, every
// replica is reachable, and once scaled down each node's plugin holds only
// the endpoints of its running tasks and no host link is left.
func (b *swarmBench) testScale(t *testing.T) {
	began := time.Now()
	b.mgr.Docker(t, "service", "scale", "-d", svcRep+"=30")
	tasks := b.waitRunning(t, svcRep, 30)
	t.Logf("scaled 3 → 30: all running in %v; per node %v", time.Since(began).Round(time.Millisecond), perNode(tasks))
	addrs := b.checkUnique(t)
	t.Logf("%d addresses in use on %s (tasks, VIPs): %s", len(addrs), swarmNet, summarize(addrs))

	// Every replica answers node1's global task: one exec, one ping each.
	var ips []string
	for _, tk := range tasks {
		ips = append(ips, tk.IP.String())
	}
	g := b.globalTasks(t)
	script := "for ip in " + strings.Join(ips, " ") + "; do ping -c1 -W2 $ip >/dev/null || echo unreachable $ip; done"
	if out := b.l.Node(1).Docker(t, "exec", g["node1"].ID, "sh", "-c", script); out != "" {
		t.Errorf("from node1's task:\n%s", out)
	}

	began = time.Now()
	b.mgr.Docker(t, "service", "scale", "-d", svcRep+"=3")
	b.waitRunning(t, svcRep, 3)
	b.waitAttachedMatchTasks(t)
	t.Logf("scaled 30 → 3: converged (tasks and attached containers) in %v", time.Since(began).Round(time.Millisecond))
	b.checkUnique(t)
	began = time.Now()
	for _, n := range b.l.Nodes {
		b.waitNoHostLinks(t, n)
		b.waitStateMatchesContainers(t, n)
	}
	t.Logf("no host link left, plugin state = running endpoints on every node, %v after convergence", time.Since(began).Round(time.Millisecond))
}

// testDrain: draining node3 moves its replicas away and leaves it clean;
// made active again, it gets its global task back.
func (b *swarmBench) testDrain(t *testing.T) {
	n3 := b.l.Node(3)
	began := time.Now()
	b.mgr.Docker(t, "node", "update", "--availability", "drain", n3.Name)
	b.waitRunning(t, svcRep, 3, b.l.Node(1), b.l.Node(2))
	b.waitRunning(t, svcGlobal, 2, b.l.Node(1), b.l.Node(2))
	t.Logf("node3 drained: replicas per node %v", perNode(b.tasks(t, svcRep)))
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "node3 without containers on "+swarmNet, func() error {
		if cs := b.attached(t, n3); len(cs) > 0 {
			return fmt.Errorf("%d containers attached: %v", len(cs), cs)
		}
		return nil
	})
	b.waitNoHostLinks(t, n3)
	b.waitStateMatchesContainers(t, n3)
	t.Logf("node3 drained and clean in %v; network still listed there: %v", time.Since(began).Round(time.Millisecond), b.networkListed(t, n3))
	b.checkUnique(t)

	b.mgr.Docker(t, "node", "update", "--availability", "active", n3.Name)
	b.waitRunning(t, svcGlobal, 3, b.l.Nodes...)
	g := b.globalTasks(t)
	b.ping(t, n3, g["node3"], g["node1"].IP.String())
}

// testWorkerCrash: a worker's engine is killed (containerd too, as in a
// crash) and started again: its global task comes back on the network,
// reachable, and the node keeps no host link of the dead containers.
func (b *swarmBench) testWorkerCrash(t *testing.T) {
	n2 := b.l.Node(2)
	before := b.globalTasks(t)["node2"]
	began := time.Now()
	n2.Kill(t)
	n2.Start(t)
	t.Logf("node2's dockerd killed and started again in %v", time.Since(began).Round(time.Millisecond))
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "a new global task container on node2", func() error {
		if c, ok := b.globalTasks(t)["node2"]; !ok || c.ID == before.ID {
			return fmt.Errorf("node2's task container: %v (before the kill: %v)", c, before)
		}
		return nil
	})
	b.waitRunning(t, svcGlobal, 3, b.l.Nodes...)
	b.waitRunning(t, svcRep, 3)
	t.Logf("node2's global task running again %v after the kill", time.Since(began).Round(time.Millisecond))

	g := b.globalTasks(t)
	b.ping(t, b.l.Node(1), g["node1"], g["node2"].IP.String())
	b.ping(t, n2, g["node2"], g["node3"].IP.String())
	b.waitNoHostLinks(t, n2)
	b.checkUnique(t)
	nets, eps := b.pluginState(t, n2)
	t.Logf("node2's plugin state after the crash: %d network(s), %d endpoint record(s) for %d attached container(s)",
		len(nets), len(eps), len(b.attached(t, n2)))
}

// testDNS: service discovery on the network from a task. dnsrr answers the
// tasks' own addresses, which are reachable; in VIP mode the name resolves
// to the service's virtual IP (reported, not asserted: see docs/swarm.md) and
// tasks.<service> to the tasks.
func (b *swarmBench) testDNS(t *testing.T) {
	b.createService(t, svcWeb, append([]string{"--replicas", "2", "--"}, swarmWeb...)...)
	b.createService(t, svcRR, append([]string{"--replicas", "2", "--endpoint-mode", "dnsrr", "--"}, swarmWeb...)...)
	web := b.waitRunning(t, svcWeb, 2)
	rr := b.waitRunning(t, svcRR, 2)
	n1 := b.l.Node(1)
	from := b.globalTasks(t)["node1"]
	// A task's name record reaches the other nodes' embedded DNS by
	// gossip, a moment after the task runs: the name is looked up until it
	// gives the tasks' addresses, for up to 15 s.
	lookup := func(name string, want []string) []string {
		t.Helper()
		var got []string
		lab.Eventually(t, 15*time.Second, 250*time.Millisecond, "nslookup "+name, func() error {
			out, errOut, _ := n1.DockerErr("exec", from.ID, "nslookup", name)
			if got = parseNslookup(out + "\n" + errOut); !slices.Equal(got, want) {
				return fmt.Errorf("%v, want %v", got, want)
			}
			return nil
		})
		return got
	}
	run := func(args ...string) (string, error) {
		out, errOut, err := n1.DockerErr(append([]string{"exec", from.ID}, args...)...)
		return strings.TrimSpace(out + "\n" + errOut), err
	}

	// dnsrr: the name is the set of task addresses, and it is reachable.
	lookup(svcRR, taskIPs(rr))
	if out, err := run("ping", "-c1", "-W2", svcRR); err != nil {
		t.Errorf("ping %s (dnsrr): %v\n%s", svcRR, err, out)
	}
	if out, err := run("timeout", "5", "wget", "-q", "-O-", "http://"+svcRR+"/"); err != nil || out == "" {
		t.Errorf("wget http://%s/ (dnsrr): %v\n%s", svcRR, err, out)
	}

	// VIP mode: tasks.<name> gives the tasks, each reachable directly.
	lookup("tasks."+svcWeb, taskIPs(web))
	for _, ip := range taskIPs(web) {
		if out, err := run("timeout", "5", "wget", "-q", "-O-", "http://"+ip+"/"); err != nil || out == "" {
			t.Errorf("wget http://%s/ (a %s task): %v\n%s", ip, svcWeb, err, out)
		}
	}
	// The service name resolves to the VIP, an address of the subnet. The
	// engine load-balances a VIP only on overlay networks (it makes the
	// load-balancer endpoint for those alone and logs "addLBBackend …:
	// Unable to find load balancing endpoint" for every task here), so
	// nothing answers it: reaching it is reported, not asserted.
	vip := b.vip(t, svcWeb)
	if !vip.IsValid() {
		t.Errorf("service %s has no VIP on %s", svcWeb, swarmNet)
	} else {
		lookup(svcWeb, []string{vip.String()})
	}
	out, err := run("timeout", "5", "wget", "-q", "-O-", "http://"+svcWeb+"/")
	t.Logf("VIP mode: %s resolves to its VIP %s; wget http://%s/ → err=%v %q", svcWeb, vip, svcWeb, err, out)
	out, err = run("ping", "-c1", "-W2", svcWeb)
	t.Logf("VIP mode: ping %s → err=%v: %s", svcWeb, err, lastLine(out))
	t.Logf("VIP mode: node1's engine logged \"Unable to find load balancing endpoint\" for %s: %v",
		swarmNet, logHasFrom(n1, 0, "addLBBackend", b.netID, "Unable to find load balancing endpoint"))
	b.checkUnique(t) // the VIP is an address of the subnet like the tasks'
}

// testRefusal: a network whose parent ("lan") resolves only on node3, where
// PARENTS names it. Tasks on node1 and node2 fail with the node's refusal,
// which `docker service ps --no-trunc` shows; node3's task runs, and the
// services on the other network carry on.
func (b *swarmBench) testRefusal(t *testing.T) {
	const netName, svc = "mvs-only3", "mvs-only3-g"
	b.mgr.Docker(t, "network", "create", "-d", b.plugin, "--attachable", "--subnet", "10.97.0.0/24", "--gateway", "10.97.0.1",
		"-o", "parent=lan", netName)
	b.mgr.Docker(t, append([]string{"service", "create", "-d", "--name", svc, "--mode", "global",
		"--network", netName, "--stop-grace-period", "3s", "--restart-delay", "1s", b.image}, lab.Sleeper...)...)
	began := time.Now()
	errs := map[string]string{}
	lab.Eventually(t, swarmWait, 500*time.Millisecond, "a running task on node3 and refusals on node1 and node2", func() error {
		out := b.mgr.Docker(t, "service", "ps", "--no-trunc", "--format", "{{.Node}}|{{.CurrentState}}|{{.Error}}", svc)
		running3 := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.SplitN(line, "|", 3)
			if len(f) != 3 {
				continue
			}
			if f[0] == "node3" && strings.HasPrefix(f[1], "Running") {
				running3 = true
			}
			if f[2] != "" && errs[f[0]] == "" {
				errs[f[0]] = f[2]
			}
		}
		if !running3 || errs["node1"] == "" || errs["node2"] == "" {
			return fmt.Errorf("running on node3: %v, errors %v; service ps:\n%s", running3, errs, out)
		}
		return nil
	})
	t.Logf("refusals shown %v after service create; docker service ps --no-trunc %s:\n%s", time.Since(began).Round(time.Millisecond), svc,
		b.mgr.Docker(t, "service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", svc))
	for _, n := range []*lab.Node{b.l.Node(1), b.l.Node(2)} {
		msg := errs[n.Name]
		t.Logf("%s: %s", n.Name, msg)
		for _, want := range []string{`parent "lan" not found on this node`, "interfaces here:", n.LANLink} {
			if !strings.Contains(msg, want) {
				t.Errorf("%s: task error lacks %q: %s", n.Name, want, msg)
			}
		}
	}
	if errs["node3"] != "" {
		t.Errorf("node3 refused too: %s", errs["node3"])
	}
	b.waitRunning(t, svcGlobal, 3, b.l.Nodes...)

	// `docker run` on the attachable network, on a node that refuses it
	// (the service gone, so that its retries do not write the log): the
	// engine reports a timeout; the refusal is only in that node's log.
	b.mgr.Docker(t, "service", "rm", svc)
	lab.Eventually(t, swarmWait, 250*time.Millisecond, svc+" gone", func() error {
		if out, _, err := b.mgr.DockerErr("service", "ps", "-q", svc); err == nil {
			return fmt.Errorf("still listed: %s", out)
		}
		return nil
	})
	n2 := b.l.Node(2)
	from := logSize(n2)
	began = time.Now()
	_, errOut, err := n2.DockerErr("run", "--rm", "--network", netName, b.image, "true")
	took := time.Since(began).Round(time.Millisecond)
	t.Logf("docker run --network %s on node2: failed after %v: %s", netName, took, lastLine(errOut))
	if err == nil {
		t.Errorf("docker run on node2 attached to a network whose parent node2 lacks")
	} else if !strings.Contains(errOut, "attaching to network failed") {
		t.Errorf("docker run on node2: %v: %s (want the engine's \"attaching to network failed\")", err, errOut)
	}
	if !logHasFrom(n2, from, "method=CreateNetwork", "not found on this node") {
		t.Errorf("node2's dockerd log has no refusal since the docker run")
	}
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "network "+netName+" removable", func() error {
		if _, errOut, err := b.mgr.DockerErr("network", "rm", netName); err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	})
}

// testLeaderFailover: with three managers, the leader's engine stops. A new
// leader is elected and calls AllocateNetwork again; the tasks on the other
// nodes keep talking; new tasks get addresses that collide with none in use.
// The old leader's engine comes back and rejoins.
func (b *swarmBench) testLeaderFailover(t *testing.T) {
	n1, n2, n3 := b.l.Node(1), b.l.Node(2), b.l.Node(3)
	b.mgr.Docker(t, "node", "promote", n2.Name, n3.Name)
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "three managers", func() error {
		st := b.managerStatus(t, n1)
		if st["node1"] != "Leader" || st["node2"] != "Reachable" || st["node3"] != "Reachable" {
			return fmt.Errorf("manager status %v", st)
		}
		return nil
	})
	before := b.globalTasks(t)
	logFrom := map[string]int64{n2.Name: logSize(n2), n3.Name: logSize(n3)}

	began := time.Now()
	n1.Stop(t)
	stopped := time.Now()
	var leader *lab.Node
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "a new leader", func() error {
		for _, n := range []*lab.Node{n2, n3} {
			for name, st := range b.managerStatus(t, n) {
				if st == "Leader" && name != n1.Name {
					leader = b.node(name)
					return nil
				}
			}
		}
		return fmt.Errorf("no leader among node2, node3")
	})
	b.mgr = leader
	t.Logf("node1 (leader) stopped in %v; %s elected leader %v later", stopped.Sub(began).Round(time.Millisecond),
		leader.Name, time.Since(stopped).Round(time.Millisecond))

	lab.Eventually(t, swarmWait, 500*time.Millisecond, "AllocateNetwork on the new leader", func() error {
		if !logHasFrom(leader, logFrom[leader.Name], "AllocateNetwork", b.netID) {
			return fmt.Errorf("%s's log has no AllocateNetwork for %s since node1 stopped", leader.Name, b.netID)
		}
		return nil
	})
	b.ping(t, n2, before["node2"], before["node3"].IP.String())
	b.ping(t, n3, before["node3"], before["node2"].IP.String())

	began = time.Now()
	b.mgr.Docker(t, "service", "scale", "-d", svcRep+"=9")
	tasks := b.waitRunning(t, svcRep, 9, n2, n3)
	t.Logf("scaled to 9 on the new leader: running on node2 and node3 in %v", time.Since(began).Round(time.Millisecond))
	b.checkUnique(t, n2, n3)
	for _, tk := range tasks {
		for _, name := range []string{n2.Name, n3.Name} {
			if tk.IP == before[name].IP {
				t.Errorf("replica on %s got %s, the address of %s's running global task", tk.Node, tk.IP, name)
			}
		}
		if tk.IP == before[n1.Name].IP {
			t.Logf("replica on %s got %s, the address node1's global task had before node1 stopped", tk.Node, tk.IP)
		}
	}

	began = time.Now()
	n1.Start(t)
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "node1 back as a manager", func() error {
		if st := b.managerStatus(t, b.mgr); st["node1"] != "Reachable" && st["node1"] != "Leader" {
			return fmt.Errorf("manager status %v", st)
		}
		return nil
	})
	lab.WaitNodesReady(t, b.mgr, b.l.Nodes...)
	b.waitRunning(t, svcGlobal, 3, b.l.Nodes...)
	t.Logf("node1 rejoined and runs its global task %v after its engine started", time.Since(began).Round(time.Millisecond))
	g := b.globalTasks(t)
	b.ping(t, n1, g["node1"], g["node2"].IP.String())
	b.ping(t, n3, g["node3"], g["node1"].IP.String())
	b.waitNoHostLinks(t, n1)
	b.checkUnique(t)
}

// testStack: the two compose files of docs/swarm.md, deployed with
// `docker stack deploy`: one on the existing network (external), one that
// creates its own network with the plugin as driver and a parent in
// driver_opts.
func (b *swarmBench) testStack(t *testing.T) {
	dir := t.TempDir()
	external := fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %s
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    networks: [lan]
    deploy:
      replicas: 2
      endpoint_mode: dnsrr
networks:
  lan:
    external: true
    name: %s
`, b.image, swarmNet)
	own := fmt.Sprintf(`version: "3.8"
services:
  app:
    image: %s
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"]
    networks: [lan]
    deploy:
      mode: global
      endpoint_mode: dnsrr
networks:
  lan:
    driver: "%s"
    driver_opts:
      parent: "%s"
    attachable: true
    ipam:
      driver: "%s"
      config:
        - subnet: 10.96.0.0/24
`, b.image, b.plugin, swarmParentSpec, b.plugin)
	for name, body := range map[string]string{"external.yml": external, "own.yml": own} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	began := time.Now()
	b.mgr.Docker(t, "stack", "deploy", "-c", filepath.Join(dir, "external.yml"), "mvsext")
	b.mgr.Docker(t, "stack", "deploy", "-c", filepath.Join(dir, "own.yml"), "mvsown")
	ext := b.waitRunning(t, "mvsext_app", 2)
	own3 := b.waitRunning(t, "mvsown_app", 3, b.l.Nodes...)
	t.Logf("two stacks deployed and running in %v", time.Since(began).Round(time.Millisecond))
	for _, tk := range ext {
		if !b.subnet.Contains(tk.IP) {
			t.Errorf("external-network stack task on %s has %v, want an address of %s", tk.Node, tk.IP, swarmSubnet)
		}
	}
	ownSubnet := netip.MustParsePrefix("10.96.0.0/24")
	seen := map[netip.Addr]bool{}
	for _, tk := range own3 {
		if !ownSubnet.Contains(tk.IP) || seen[tk.IP] {
			t.Errorf("own-network stack task on %s has %v, want a unique address of %s", tk.Node, tk.IP, ownSubnet)
		}
		seen[tk.IP] = true
	}
	drv := b.mgr.Docker(t, "network", "inspect", "-f", "{{.Driver}} {{.Scope}} {{.Attachable}} {{index .Options \"parent\"}} {{.IPAM.Driver}}", "mvsown_lan")
	gw := b.mgr.Docker(t, "network", "inspect", "-f", "{{range .IPAM.Config}}{{.Subnet}} gateway {{.Gateway}}{{end}}", "mvsown_lan")
	t.Logf("network mvsown_lan: %s; %s", drv, gw)
	if v := b.vip(t, "mvsext_app"); v.IsValid() {
		t.Errorf("mvsext_app (endpoint_mode: dnsrr) has a VIP %s", v)
	}
	if want := b.plugin + " swarm true " + swarmParentSpec + " " + b.plugin; drv != want {
		t.Errorf("mvsown_lan: %q, want %q", drv, want)
	}
	b.checkUnique(t)

	b.mgr.Docker(t, "stack", "rm", "mvsext", "mvsown")
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "stack network removed", func() error {
		if _, _, err := b.mgr.DockerErr("network", "inspect", "mvsown_lan"); err == nil {
			return fmt.Errorf("mvsown_lan still there")
		}
		return nil
	})
}

// testNetworkRemove: with every service gone, `docker network rm` leaves no
// trace on any node: no network, no host or VLAN link, and an empty plugin
// state.
func (b *swarmBench) testNetworkRemove(t *testing.T) {
	began := time.Now()
	b.mgr.Docker(t, "service", "rm", svcGlobal, svcRep, svcWeb, svcRR)
	for _, n := range b.l.Nodes {
		lab.Eventually(t, swarmWait, 250*time.Millisecond, n.Name+": no container on "+swarmNet, func() error {
			if cs := b.attached(t, n); len(cs) > 0 {
				return fmt.Errorf("%d containers attached", len(cs))
			}
			return nil
		})
	}
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "docker network rm", func() error {
		if _, errOut, err := b.mgr.DockerErr("network", "rm", swarmNet); err != nil {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		return nil
	})
	for _, n := range b.l.Nodes {
		lab.Eventually(t, swarmWait, 250*time.Millisecond, n.Name+": network gone", func() error {
			if b.networkListed(t, n) {
				return fmt.Errorf("docker network ls still lists %s", swarmNet)
			}
			return nil
		})
		b.waitNoHostLinks(t, n)
		if v := vlanLinks(t, n); len(v) > 0 {
			t.Errorf("%s: VLAN links left: %v", n.Name, v)
		}
		lab.Eventually(t, swarmWait, 250*time.Millisecond, n.Name+": plugin state empty", func() error {
			nets, eps := b.pluginState(t, n)
			if len(nets)+len(eps) > 0 {
				return fmt.Errorf("%d network(s), %d endpoint(s) saved", len(nets), len(eps))
			}
			return nil
		})
	}
	t.Logf("services and network removed, every node clean, in %v", time.Since(began).Round(time.Millisecond))
}

// ---- helpers ----

// swarmTask is a task of a service as the managers see it.
type swarmTask struct {
	ID, Node, State string
	IP              netip.Addr
}

// swarmCtr is a running container attached to the network, as its node sees it.
type swarmCtr struct {
	ID, Service string
	IP          netip.Addr
}

func (c swarmCtr) String() string { return fmt.Sprintf("%s(%s %s)", short12(c.ID), c.Service, c.IP) }

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndexByte(s, '\n')+1:]
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

func short12(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func swarmCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

func (b *swarmBench) node(name string) *lab.Node {
	for _, n := range b.l.Nodes {
		if n.Name == name {
			return n
		}
	}
	panic("no node " + name)
}

// createService starts a service on the network with the bench's image;
// args are service flags, then (after "--") the command, Sleeper by default.
func (b *swarmBench) createService(t *testing.T, name string, args ...string) {
	t.Helper()
	flags, cmd := args, lab.Sleeper
	if i := slices.Index(args, "--"); i >= 0 {
		flags, cmd = args[:i], args[i+1:]
	}
	all := append([]string{"service", "create", "-d", "--name", name, "--network", swarmNet, "--stop-grace-period", "3s"}, flags...)
	all = append(append(all, b.image), cmd...)
	b.mgr.Docker(t, all...)
}

// tasks lists a service's tasks that are meant to run, with their node and
// their address on the network.
func (b *swarmBench) tasks(t *testing.T, service string) []swarmTask {
	t.Helper()
	ctx, cancel := swarmCtx()
	defer cancel()
	cli := b.mgr.Client()
	nodes, err := cli.NodeList(ctx, swarm.NodeListOptions{})
	if err != nil {
		t.Fatalf("node list on %s: %v", b.mgr.Name, err)
	}
	names := map[string]string{}
	for _, n := range nodes {
		names[n.ID] = n.Description.Hostname
	}
	list, err := cli.TaskList(ctx, swarm.TaskListOptions{Filters: filters.NewArgs(
		filters.Arg("service", service), filters.Arg("desired-state", "running"))})
	if err != nil {
		t.Fatalf("task list on %s: %v", b.mgr.Name, err)
	}
	var out []swarmTask
	for _, tk := range list {
		st := swarmTask{ID: tk.ID, Node: names[tk.NodeID], State: string(tk.Status.State)}
		// The address on the bench network, or else on another network of
		// the plugin (a stack's own).
		for _, na := range tk.NetworksAttachments {
			p, err := netip.ParsePrefix(firstOr(na.Addresses))
			if err != nil {
				continue
			}
			if na.Network.ID == b.netID {
				st.IP = p.Addr()
				break
			}
			if dc := na.Network.Spec.DriverConfiguration; dc != nil && dc.Name == b.plugin && !st.IP.IsValid() {
				st.IP = p.Addr()
			}
		}
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].IP.Less(out[j].IP) })
	return out
}

// waitRunning waits until the service has exactly want tasks meant to run,
// all running with an address and, when nodes are given, all on those
// nodes (a global service has one task per node at most, so want =
// len(nodes) then means one on each). It returns the tasks.
func (b *swarmBench) waitRunning(t *testing.T, service string, want int, on ...*lab.Node) []swarmTask {
	t.Helper()
	var tasks []swarmTask
	lab.Eventually(t, swarmWait, 250*time.Millisecond, fmt.Sprintf("%s: %d tasks running", service, want), func() error {
		tasks = b.tasks(t, service)
		if len(tasks) != want {
			return fmt.Errorf("%d tasks meant to run: %v", len(tasks), tasks)
		}
		count := map[string]int{}
		for _, tk := range tasks {
			if tk.State != string(swarm.TaskStateRunning) || !tk.IP.IsValid() {
				return fmt.Errorf("task %s on %s is %s (address %v)", tk.ID, tk.Node, tk.State, tk.IP)
			}
			count[tk.Node]++
		}
		if len(on) > 0 {
			for _, n := range on {
				delete(count, n.Name)
			}
			if len(count) > 0 {
				return fmt.Errorf("tasks on other nodes than %v: %v", names(on), count)
			}
		}
		return nil
	})
	return tasks
}

// attached lists the running containers of a node attached to the network.
func (b *swarmBench) attached(t *testing.T, n *lab.Node) []swarmCtr {
	t.Helper()
	ctx, cancel := swarmCtx()
	defer cancel()
	cs, err := n.Client().ContainerList(ctx, container.ListOptions{})
	if err != nil {
		t.Fatalf("%s: container list: %v", n.Name, err)
	}
	var out []swarmCtr
	for _, c := range cs {
		if c.NetworkSettings == nil {
			continue
		}
		for _, es := range c.NetworkSettings.Networks {
			if es != nil && es.NetworkID == b.netID {
				ip, _ := netip.ParseAddr(es.IPAddress)
				out = append(out, swarmCtr{ID: c.ID, Service: c.Labels["com.docker.swarm.service.name"], IP: ip})
			}
		}
	}
	return out
}

// globalTasks maps each node name to its running container of the global
// service.
func (b *swarmBench) globalTasks(t *testing.T) map[string]swarmCtr {
	t.Helper()
	g := map[string]swarmCtr{}
	for _, n := range b.l.Nodes {
		if !n.Running() {
			continue
		}
		for _, c := range b.attached(t, n) {
			if c.Service == svcGlobal {
				g[n.Name] = c
			}
		}
	}
	return g
}

// waitAttachedMatchTasks waits until every node runs exactly the containers
// of the tasks the managers say run there.
func (b *swarmBench) waitAttachedMatchTasks(t *testing.T) {
	t.Helper()
	lab.Eventually(t, swarmWait, 250*time.Millisecond, "containers match tasks", func() error {
		want := map[string]int{}
		for _, svc := range []string{svcGlobal, svcRep} {
			for _, tk := range b.tasks(t, svc) {
				want[tk.Node]++
			}
		}
		for _, n := range b.l.Nodes {
			if got := len(b.attached(t, n)); got != want[n.Name] {
				return fmt.Errorf("%s: %d containers attached, %d tasks", n.Name, got, want[n.Name])
			}
		}
		return nil
	})
}

// checkUnique checks that no address of the network is used twice: among
// the running containers of the given nodes (all running nodes by default),
// and among the tasks and VIPs the managers allocated. It returns the
// addresses in use.
func (b *swarmBench) checkUnique(t *testing.T, nodes ...*lab.Node) map[netip.Addr]string {
	t.Helper()
	if len(nodes) == 0 {
		nodes = b.l.Nodes
	}
	used := map[netip.Addr]string{}
	for _, n := range nodes {
		if !n.Running() {
			continue
		}
		for _, c := range b.attached(t, n) {
			if !b.subnet.Contains(c.IP) {
				t.Errorf("%s: container %v has no address of %s", n.Name, c, swarmSubnet)
				continue
			}
			if other, dup := used[c.IP]; dup {
				t.Errorf("address %s used twice: %s and %s on %s", c.IP, other, c, n.Name)
			}
			used[c.IP] = fmt.Sprintf("%s on %s", c, n.Name)
		}
	}
	alloc := map[netip.Addr]string{}
	for _, svc := range b.services(t) {
		for _, tk := range b.tasks(t, svc) {
			if !tk.IP.IsValid() {
				continue
			}
			if other, dup := alloc[tk.IP]; dup {
				t.Errorf("managers allocated %s twice: %s and task %s of %s", tk.IP, other, tk.ID, svc)
			}
			alloc[tk.IP] = "task " + tk.ID + " of " + svc
		}
		if vip := b.vip(t, svc); vip.IsValid() {
			if other, dup := alloc[vip]; dup {
				t.Errorf("managers allocated %s twice: %s and the VIP of %s", vip, other, svc)
			}
			alloc[vip] = "VIP of " + svc
			used[vip] = "VIP of " + svc
		}
	}
	if gw := netip.MustParseAddr(swarmGateway); used[gw] != "" || alloc[gw] != "" {
		t.Errorf("the gateway %s was handed out: %s%s", gw, used[gw], alloc[gw])
	}
	return used
}

// services lists the services attached to the bench network.
func (b *swarmBench) services(t *testing.T) []string {
	t.Helper()
	ctx, cancel := swarmCtx()
	defer cancel()
	svcs, err := b.mgr.Client().ServiceList(ctx, swarm.ServiceListOptions{})
	if err != nil {
		t.Fatalf("service list: %v", err)
	}
	var names []string
	for _, s := range svcs {
		for _, na := range s.Spec.TaskTemplate.Networks {
			if na.Target == b.netID || na.Target == swarmNet {
				names = append(names, s.Spec.Name)
			}
		}
	}
	return names
}

// vip is the service's virtual IP on the bench network, if it has one.
func (b *swarmBench) vip(t *testing.T, service string) netip.Addr {
	t.Helper()
	ctx, cancel := swarmCtx()
	defer cancel()
	s, _, err := b.mgr.Client().ServiceInspectWithRaw(ctx, service, swarm.ServiceInspectOptions{})
	if err != nil {
		t.Fatalf("service inspect %s: %v", service, err)
	}
	for _, v := range s.Endpoint.VirtualIPs {
		if v.NetworkID == b.netID {
			if p, err := netip.ParsePrefix(v.Addr); err == nil {
				return p.Addr()
			}
		}
	}
	return netip.Addr{}
}

// checkParent checks that a task's link is a macvlan on its node's own LAN
// link, resolved through the candidate list or the PARENTS alias, and that
// the plugin logged that resolution.
func (b *swarmBench) checkParent(t *testing.T, n *lab.Node, c swarmCtr) {
	t.Helper()
	ctx, cancel := swarmCtx()
	defer cancel()
	info, err := n.Client().ContainerInspect(ctx, c.ID)
	if err != nil {
		t.Fatalf("%s: inspect %s: %v", n.Name, c.ID, err)
	}
	out, err := exec.Command("nsenter", "--net="+info.NetworkSettings.SandboxKey, "--", "ip", "-d", "-j", "link", "show", "eth0").Output()
	if err != nil {
		t.Fatalf("%s: ip link in task %s: %v", n.Name, short12(c.ID), err)
	}
	var links []struct {
		LinkIndex int `json:"link_index"`
		Info      struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil || len(links) != 1 {
		t.Fatalf("%s: ip -j link show eth0 in task: %v: %s", n.Name, err, out)
	}
	lan := n.Exec(t, "ip", "-o", "link", "show", "dev", n.LANLink)
	lanIndex := strings.SplitN(lan, ":", 2)[0]
	if links[0].Info.Kind != "macvlan" || fmt.Sprint(links[0].LinkIndex) != lanIndex {
		t.Errorf("%s: task link is %q on ifindex %d, want a macvlan on %s (ifindex %s)", n.Name, links[0].Info.Kind, links[0].LinkIndex, n.LANLink, lanIndex)
	}
	if !logHasFrom(n, 0, "network created", "net="+b.netID, "parent="+n.LANLink) {
		t.Errorf("%s: no plugin log line saying network %s was created on parent %s", n.Name, b.netID, n.LANLink)
	}
}

// ping pings ip from a task container on node n (a few tries: the first
// packet may wait on ARP).
func (b *swarmBench) ping(t *testing.T, n *lab.Node, from swarmCtr, ip string) {
	t.Helper()
	if from.ID == "" {
		t.Fatalf("%s: no task container to ping %s from", n.Name, ip)
	}
	lab.Eventually(t, 10*time.Second, 200*time.Millisecond, fmt.Sprintf("%s: ping %s from %s", n.Name, ip, short12(from.ID)), func() error {
		out, errOut, err := n.DockerErr("exec", from.ID, "ping", "-c1", "-W2", ip)
		if err != nil || !strings.Contains(out, "1 packets received") {
			return fmt.Errorf("%v: %s %s", err, out, errOut)
		}
		return nil
	})
}

// waitNoHostLinks waits until no link of the driver is left in the node's
// namespace (links of running containers are in the containers').
func (b *swarmBench) waitNoHostLinks(t *testing.T, n *lab.Node) {
	t.Helper()
	lab.Eventually(t, 30*time.Second, 100*time.Millisecond, n.Name+": no mvs link in the node namespace", func() error {
		var left []string
		for _, name := range n.LinkNames(t) {
			if strings.HasPrefix(name, "mvs") {
				left = append(left, name)
			}
		}
		if len(left) > 0 {
			return fmt.Errorf("%v", left)
		}
		return nil
	})
}

// waitStateMatchesContainers waits until the plugin on n holds exactly one
// endpoint record per container attached there.
func (b *swarmBench) waitStateMatchesContainers(t *testing.T, n *lab.Node) {
	t.Helper()
	lab.Eventually(t, 30*time.Second, 250*time.Millisecond, n.Name+": plugin endpoints = attached containers", func() error {
		_, eps := b.pluginState(t, n)
		got := 0
		for _, e := range eps {
			if e.NetworkID == b.netID {
				got++
			}
		}
		if want := len(b.attached(t, n)); got != want {
			return fmt.Errorf("%d endpoint records, %d containers", got, want)
		}
		return nil
	})
}

// pluginState reads the plugin's saved state on node n from a copy of its
// state file (the running plugin holds the file's lock).
func (b *swarmBench) pluginState(t *testing.T, n *lab.Node) ([]*model.Network, []*model.Endpoint) {
	t.Helper()
	id := b.pluginIDs[n.Name]
	if id == "" {
		id = n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", b.plugin)
		b.pluginIDs[n.Name] = id
	}
	src := filepath.Join(n.Dir, "data", "plugins", id, "propagated-mount", store.FileName)
	dir := t.TempDir()
	if err := copyFile(src, filepath.Join(dir, store.FileName)); err != nil {
		t.Fatalf("%s: plugin state: %v", n.Name, err)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatalf("%s: plugin state: %v", n.Name, err)
	}
	defer st.Close()
	nets, eps, _, err := st.Load()
	if err != nil {
		t.Fatalf("%s: plugin state: %v", n.Name, err)
	}
	return nets, eps
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// networkListed reports whether `docker network ls` on n lists the network.
func (b *swarmBench) networkListed(t *testing.T, n *lab.Node) bool {
	t.Helper()
	out := n.Docker(t, "network", "ls", "--format", "{{.Name}}")
	return slices.Contains(strings.Split(out, "\n"), swarmNet)
}

// managerStatus asks node n for every node's manager status.
func (b *swarmBench) managerStatus(t *testing.T, n *lab.Node) map[string]string {
	t.Helper()
	st := map[string]string{}
	out, _, err := n.DockerErr("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
	if err != nil {
		return st // no leader yet, or the engine is not a manager
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			st[f[0]] = f[1]
		}
	}
	return st
}

// vlanLinks lists 802.1q links in the node's namespace.
func vlanLinks(t *testing.T, n *lab.Node) []string {
	t.Helper()
	out, err := exec.Command("ip", "-d", "-j", "-n", n.NetNS, "link", "show").Output()
	if err != nil {
		t.Fatalf("%s: ip -d link show: %v", n.Name, err)
	}
	var links []struct {
		Name string `json:"ifname"`
		Info struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("%s: ip -j: %v", n.Name, err)
	}
	var v []string
	for _, l := range links {
		if l.Info.Kind == "vlan" {
			v = append(v, l.Name)
		}
	}
	return v
}

func logSize(n *lab.Node) int64 {
	fi, err := os.Stat(n.LogPath())
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logHasFrom reports whether a line of n's dockerd log past offset holds
// every one of words.
func logHasFrom(n *lab.Node, offset int64, words ...string) bool {
	b, err := os.ReadFile(n.LogPath())
	if err != nil || int64(len(b)) < offset {
		return false
	}
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		ok := true
		for _, w := range words {
			if !strings.Contains(line, w) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// parseNslookup returns the sorted addresses busybox nslookup printed for
// the name asked (those after a "Name:" line; the server's come before).
func parseNslookup(out string) []string {
	var addrs []string
	named := false
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "Name:") {
			named = true
			continue
		}
		if v, ok := strings.CutPrefix(line, "Address:"); ok && named {
			v = strings.TrimSpace(v)
			if a, err := netip.ParseAddr(v); err == nil && a.Is4() {
				addrs = append(addrs, a.String())
			}
		}
	}
	sort.Slice(addrs, func(i, j int) bool {
		return netip.MustParseAddr(addrs[i]).Less(netip.MustParseAddr(addrs[j]))
	})
	return slices.Compact(addrs)
}

func taskIPs(tasks []swarmTask) []string {
	var ips []string
	for _, tk := range tasks {
		ips = append(ips, tk.IP.String())
	}
	return ips // tasks come sorted by address
}

func names(nodes []*lab.Node) []string {
	var s []string
	for _, n := range nodes {
		s = append(s, n.Name)
	}
	return s
}

func perNode(tasks []swarmTask) map[string]int {
	m := map[string]int{}
	for _, tk := range tasks {
		m[tk.Node]++
	}
	return m
}

// summarize prints a set of addresses as their lowest, highest and count.
func summarize(addrs map[netip.Addr]string) string {
	var list []netip.Addr
	for a := range addrs {
		list = append(list, a)
	}
	if len(list) == 0 {
		return "none"
	}
	slices.SortFunc(list, func(a, b netip.Addr) int { return a.Compare(b) })
	return fmt.Sprintf("%s … %s (%d)", list[0], list[len(list)-1], len(list))
}
