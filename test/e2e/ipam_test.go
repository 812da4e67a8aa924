//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/ipam"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// The address manager's network in TestIPAMEngine: the lab LAN, a range of
// seven addresses (.200 is the range's first; the gateway, the lab bridge,
// lies outside it).
const (
	ipamNet   = "mvs-ipam"
	ipamRange = lab.LANPrefix + ".200/29"
)

// TestIPAMEngine: the plugin's address manager (--ipam-driver) on one real
// engine, standalone (SCOPE=local, which every engine allows).
//
//   - a network without --subnet is refused with a message that says what to
//     give, and nothing is created;
//   - addresses come from the --ip-range in turn; a removed container's
//     address is not handed to the next container (the built-in manager
//     gives it at once), but can be taken by name with --ip;
//   - an address in use is refused by name;
//   - a plugin restart and a dockerd restart keep what is in use: the next
//     container gets a new address, and a running one's address is never
//     given twice;
//   - removing the network gives its pool back (GET /status lists none).
func TestIPAMEngine(t *testing.T) {
	step := lab.Steps(t)
	n, b, pluginDir := oneEngine(t)
	n.InstallPluginFromDir(t, pluginRef, pluginDir, "SCOPE=local")
	step("standalone engine with the plugin (SCOPE=local)")

	_, errOut, err := n.DockerErr("network", "create", "-d", pluginRef, "--ipam-driver", pluginRef, "-o", "parent="+n.LANLink, ipamNet)
	if err == nil {
		b.removeNetwork(t, ipamNet)
		t.Fatalf("a network without --subnet was created")
	}
	if !strings.Contains(errOut, "needs the network's subnet: give it with --subnet") {
		t.Errorf("refusal without --subnet: %q", errOut)
	}
	if st := n.Status(t, pluginRef); len(st.IPAM.Pools)+len(st.Networks) != 0 {
		t.Errorf("the refusal left pools %+v, networks %+v", st.IPAM.Pools, st.Networks)
	}
	step("refused without --subnet")

	b.network(t, ipamNet, "--ipam-driver", pluginRef, "--subnet", lab.LANSubnet, "--ip-range", ipamRange,
		"--gateway", lab.BridgeAddr, "-o", "parent="+n.LANLink)
	st := n.Status(t, pluginRef)
	if len(st.IPAM.Pools) != 1 || st.IPAM.Pools[0].Space != ipam.LocalSpace || st.IPAM.Pools[0].Range != ipamRange {
		t.Fatalf("pools after network create: %+v, want one of range %s in %s", st.IPAM.Pools, ipamRange, ipam.LocalSpace)
	}
	addr := func(c string) string { return b.ipv4(t, c, ipamNet) }
	at := func(host int) string { return fmt.Sprintf("%s.%d", lab.LANPrefix, host) }
	for i, c := range []string{"ia1", "ia2", "ia3"} {
		b.run(t, c, ipamNet)
		if got := addr(c); got != at(200+i) {
			t.Errorf("%s got %s, want %s (the range in turn)", c, got, at(200+i))
		}
	}
	b.ping(t, "ia1", "ia3")
	b.ping(t, "ia1", lab.BridgeAddr)
	step("three containers, addresses in turn, reachable")

	n.Docker(t, "rm", "-f", "ia2")
	b.run(t, "ia4", ipamNet)
	if got := addr("ia4"); got != at(203) {
		t.Errorf("after ia2 (%s) went, ia4 got %s, want %s: a given-back address waits its turn", at(201), got, at(203))
	}
	b.run(t, "ia5", ipamNet, "--ip", at(201))
	if got := addr("ia5"); got != at(201) {
		t.Errorf("--ip %s: got %s", at(201), got)
	}
	_, errOut, err = n.DockerErr("run", "-d", "--name", "ia-dup", "--network", ipamNet, "--ip", at(200), b.img, "true")
	n.DockerErr("rm", "-f", "ia-dup")
	if err == nil || !strings.Contains(errOut, at(200)+" is already in use on this network") {
		t.Errorf("--ip of a running container's address: err %v, %q; want a refusal naming it", err, errOut)
	}
	step("a removed container's address waits; --ip takes it; an address in use is refused")

	n.Docker(t, "plugin", "disable", "-f", pluginRef)
	n.Docker(t, "plugin", "enable", pluginRef)
	b.run(t, "ia6", ipamNet)
	if got := addr("ia6"); got != at(204) {
		t.Errorf("after a plugin restart ia6 got %s, want %s", got, at(204))
	}
	step("plugin restart: the manager goes on where it was")

	n.Restart(t)
	// The containers stopped with the engine (no restart policy); start two
	// again and one new: none may share an address.
	n.Docker(t, "start", "ia1", "ia3")
	b.run(t, "ia7", ipamNet)
	seen := map[string]string{}
	for _, c := range []string{"ia1", "ia3", "ia7"} {
		a := addr(c)
		if a == "" {
			t.Errorf("%s has no address after the dockerd restart", c)
			continue
		}
		if other, dup := seen[a]; dup {
			t.Errorf("%s and %s share %s after the dockerd restart", c, other, a)
		}
		seen[a] = c
	}
	b.ping(t, "ia7", "ia1")
	t.Logf("after the dockerd restart: %v", seen)
	step("dockerd restart: containers started again, a new one, no address twice")

	for _, c := range []string{"ia1", "ia3", "ia4", "ia5", "ia6", "ia7"} {
		n.Docker(t, "rm", "-f", c)
	}
	b.removeNetwork(t, ipamNet)
	if st := n.Status(t, pluginRef); len(st.IPAM.Pools) != 0 {
		t.Errorf("pools left after the network went: %+v", st.IPAM.Pools)
	}
	b.waitNoDriverLinks(t)
	step("network removed: no pool, no link left")
}

// TestIPAMSwarmPools: on a one-node swarm the plugin's address manager holds
// two pools per network, the managers' allocator's and the node's own copy's,
// each tied to the network; a dockerd restart replaces both, and the old
// ones are dropped rather than piling up.
func TestIPAMSwarmPools(t *testing.T) {
	step := lab.Steps(t)
	n, b, pluginDir := oneEngine(t)
	n.InstallPluginFromDir(t, pluginRef, pluginDir)
	lab.SingleNodeSwarm(t, n)
	lab.WaitPluginListed(t, n, pluginRef, n)
	netID := n.Docker(t, "network", "create", "-d", pluginRef, "--ipam-driver", pluginRef, "--attachable",
		"--subnet", lab.LANSubnet, "--ip-range", ipamRange, "--gateway", lab.BridgeAddr, "-o", "parent="+n.LANLink, ipamNet)
	t.Cleanup(func() { b.removeNetwork(t, ipamNet) })
	b.run(t, "is1", ipamNet, "--restart", "always")
	step("one-node swarm, network with the address manager, one container")

	pools := func(when string) map[string]int {
		t.Helper()
		roles := map[string]int{}
		for _, p := range n.Status(t, pluginRef).IPAM.Pools {
			t.Logf("%s: pool %s network %.12s role %q, %d in use, made %s", when, p.ID, p.Network, p.Role, p.InUse, p.Created.Format("15:04:05.000"))
			if p.Network != netID {
				t.Errorf("%s: pool %s is tied to network %q, want %s", when, p.ID, p.Network, netID)
			}
			roles[p.Role]++
		}
		if roles[ipam.RoleAllocator] != 1 || roles[ipam.RoleNode] != 1 || len(roles) != 2 {
			t.Errorf("%s: pools by role %v, want one allocator's and one node's", when, roles)
		}
		return roles
	}
	pools("running")
	step("two pools, each tied to the network")

	n.Restart(t)
	lab.WaitNodesReady(t, n, n)
	lab.Eventually(t, time.Minute, 250*time.Millisecond, "is1 back with an address", func() error {
		if a := b.ipv4(t, "is1", ipamNet); a == "" {
			return fmt.Errorf("no address yet")
		}
		return nil
	})
	pools("after a dockerd restart")
	step("dockerd restart: new pools, the old ones dropped")
}
