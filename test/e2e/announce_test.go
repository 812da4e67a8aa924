//go:build e2e

package e2e

// Announcements and the address check on real engines (internal/announce):
//
//	TestAnnounceMovedTask  a silent task's address comes back on another node;
//	                       a client on the LAN reaches it at once with
//	                       announcements, and waits on the switch without
//	TestAddressCheck       a machine Docker does not know holds an address of
//	                       the range: the task given it fails, naming it, and
//	                       the next task gets another address
//
// The lab's lan namespace is the switch: a Linux bridge learning MACs with
// the default 300 s ageing. On engine 28 the engine announces too, from
// inside the container, and honours the same options; the assertions hold
// whichever side sends.

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

const (
	anPlugin = "macvlan-swarm:announce"
	anWait   = time.Minute // bounds a hung engine; nothing asserts on time
)

// anSwarm is a 3-node swarm (node1 manager) with the plugin on every node.
type anSwarm struct {
	l   *lab.Lab
	mgr *lab.Node
	img string
}

func newAnSwarm(t *testing.T) *anSwarm {
	t.Helper()
	step := lab.Steps(t)
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 3})
	for _, n := range l.Nodes {
		n.InstallPluginFromDir(t, anPlugin, pluginDir, "LOG_LEVEL=debug")
	}
	l.InitSwarm(t, 1, 2)
	lab.WaitPluginListed(t, l.Node(1), anPlugin, l.Nodes...)
	s := &anSwarm{l: l, mgr: l.Node(1)}
	// Each node needs the image: services run it by its local name.
	for _, n := range l.Nodes {
		s.img = lab.BusyboxImage(t, n)
	}
	step("3-node swarm with the plugin and the image on every node")
	return s
}

func (s *anSwarm) network(t *testing.T, name string, args ...string) {
	t.Helper()
	s.mgr.Docker(t, append(append([]string{"network", "create", "-d", anPlugin, "--attachable"}, args...), name)...)
	t.Cleanup(func() {
		lab.Eventually(t, 60*time.Second, 250*time.Millisecond, "remove network "+name, func() error {
			_, errOut, err := s.mgr.DockerErr("network", "rm", name)
			if err != nil && !nbGone(errOut) {
				return fmt.Errorf("%v: %s", err, errOut)
			}
			return nil
		})
	})
}

// service starts a one-replica silent service (Sleeper sends nothing) on
// network, on node nodeName, and removes it when the test ends. dnsrr: in
// the default VIP mode the service's virtual IP takes an address of the
// range too, and the tests need to know which address a task gets.
func (s *anSwarm) service(t *testing.T, name, network, nodeName string) {
	t.Helper()
	s.mgr.Docker(t, append([]string{"service", "create", "-d", "--name", name, "--network", network,
		"--stop-grace-period", "3s", "--endpoint-mode", "dnsrr", "--constraint", "node.hostname==" + nodeName, s.img}, lab.Sleeper...)...)
	t.Cleanup(func() { s.removeService(t, name) })
}

func (s *anSwarm) removeService(t *testing.T, name string) {
	t.Helper()
	if _, errOut, err := s.mgr.DockerErr("service", "rm", name); err != nil && !nbGone(errOut) {
		t.Errorf("docker service rm %s: %v: %s", name, err, errOut)
	}
}

// running waits until the service's container runs on node n and returns
// its id and its address on network.
func (s *anSwarm) running(t *testing.T, n *lab.Node, service, network string) (id string, ip netip.Addr) {
	t.Helper()
	lab.Eventually(t, anWait, 250*time.Millisecond, service+" running on "+n.Name, func() error {
		id = n.Docker(t, "ps", "-q", "--filter", "label=com.docker.swarm.service.name="+service)
		if id == "" || strings.Contains(id, "\n") {
			return fmt.Errorf("containers %q; service ps:\n%s", id, s.mgr.Docker(t, "service", "ps", "--no-trunc", service))
		}
		a := n.Docker(t, "inspect", "-f", `{{(index .NetworkSettings.Networks "`+network+`").IPAddress}}`, id)
		var err error
		ip, err = netip.ParseAddr(a)
		return err
	})
	return id, ip
}

func (s *anSwarm) startedAt(t *testing.T, n *lab.Node, id string) time.Time {
	t.Helper()
	v := n.Docker(t, "inspect", "-f", "{{.State.StartedAt}}", id)
	at, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		t.Fatalf("StartedAt %q: %v", v, err)
	}
	return at
}

// lanCmd runs a command in the lan namespace (the switch).
func (s *anSwarm) lanCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("nsenter", append([]string{"--net=/run/netns/" + s.l.LANNS}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("in %s: %s: %v: %s", s.l.LANNS, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// fdbPort is the bridge port the switch sends mac to ("" if unknown).
func (s *anSwarm) fdbPort(t *testing.T, mac string) string {
	t.Helper()
	for _, line := range strings.Split(s.lanCmd(t, "bridge", "fdb", "show", "br", "br0"), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == mac && f[1] == "dev" {
			return f[2]
		}
	}
	return ""
}

// pingerIDs makes each pinger's echo identifier its own.
var pingerIDs atomic.Uint32

// pinger sends ICMP echo requests from the lan namespace's bridge address
// every 100 ms and reports the time of the first reply from target.
type pinger struct {
	conn  net.Conn
	first chan time.Time
	stop  chan struct{}
}

func (s *anSwarm) ping(t *testing.T, target netip.Addr) *pinger {
	t.Helper()
	c, err := linktest.DialIn(s.l.LANNS, "ip4:icmp", target.String(), 2*time.Second)
	if err != nil {
		t.Fatalf("icmp socket in %s: %v", s.l.LANNS, err)
	}
	p := &pinger{conn: c, first: make(chan time.Time, 1), stop: make(chan struct{})}
	id := int(pingerIDs.Add(1)+uint32(os.Getpid())) & 0xffff
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := c.Read(buf)
			if err != nil {
				select {
				case <-p.stop:
					return
				default:
					continue // a read deadline
				}
			}
			at := time.Now()
			// Reads on an ip4:icmp socket include the IPv4 header.
			hl := int(buf[0]&0x0f) * 4
			if n < hl+8 {
				continue
			}
			m, err := icmp.ParseMessage(1, buf[hl:n])
			if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id {
				p.first <- at
				return
			}
		}
	}()
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for seq := 1; ; seq++ {
			msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: id, Seq: seq & 0xffff, Data: []byte("macvlan-swarm")}}
			b, _ := msg.Marshal(nil)
			c.SetReadDeadline(time.Now().Add(time.Second))
			c.Write(b)
			select {
			case <-p.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

// wait returns the time of the first reply, or false after bound.
func (p *pinger) wait(bound time.Duration) (time.Time, bool) {
	defer func() {
		close(p.stop)
		p.conn.Close()
	}()
	select {
	case at := <-p.first:
		return at, true
	case <-time.After(bound):
		return time.Time{}, false
	}
}

// TestAnnounceMovedTask: a silent task on node1 is reached by a client on
// the LAN (the lan namespace's bridge, which then holds an ARP entry and the
// switch an FDB entry for the task's MAC on node1's port). The service is
// removed and a new one gets the same address, and so the same MAC, on
// node2: the --ip-range is a /30 inside a /24, whose four addresses are held
// by the old task and three placeholder tasks on node3, so the only free
// address when the new task comes is the old one's. (A /32 range gives no
// address at all on engine 20.10: "could not find an available IP".) With announcements (the default) the switch learns the
// new port at once and the client reaches the new task within the bounded
// wait. Without (advertise_addr_nmsgs=0, the baseline) the switch keeps
// sending the MAC to node1's port: the time until the client gets through
// anyway (its ARP entry goes stale and is probed again) is printed.
func TestAnnounceMovedTask(t *testing.T) {
	s := newAnSwarm(t)
	for i, tc := range []struct {
		name string
		opts []string
	}{
		{"announcements", nil},
		{"baseline_nmsgs_0", []string{"-o", "com.docker.network.advertise_addr_nmsgs=0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			step := lab.Steps(t)
			netName := "an" + fmt.Sprint(i)
			prefix := fmt.Sprintf("10.96.%d.", i)
			s.network(t, netName, append([]string{"--subnet", prefix + "0/24", "--gateway", prefix + "1",
				"--ip-range", prefix + "8/30", "-o", "parent=eth0"}, tc.opts...)...)
			client := prefix + "250/24"
			s.lanCmd(t, "ip", "addr", "add", client, "dev", "br0")
			t.Cleanup(func() { s.lanCmd(t, "ip", "addr", "del", client, "dev", "br0") })

			n1, n2, n3 := s.l.Node(1), s.l.Node(2), s.l.Node(3)
			s.service(t, "old"+fmt.Sprint(i), netName, n1.Name)
			_, ip := s.running(t, n1, "old"+fmt.Sprint(i), netName)
			var held []netip.Addr
			for _, h := range []string{"holda", "holdb", "holdc"} {
				s.service(t, h+fmt.Sprint(i), netName, n3.Name)
				_, a := s.running(t, n3, h+fmt.Sprint(i), netName)
				held = append(held, a)
			}
			t.Logf("old task %s on node1, placeholders %v on node3: the range is full", ip, held)
			mac := nbDefaultMAC(t, ip.String())
			if _, ok := s.ping(t, ip).wait(10 * time.Second); !ok {
				t.Fatalf("the client cannot reach the old task %s on node1", ip)
			}
			oldPort := s.fdbPort(t, mac)
			t.Logf("old task %s (%s) on node1; the switch sends its MAC to %s", ip, mac, oldPort)
			if oldPort != "port1" {
				t.Fatalf("switch has %s on %q, want port1 (node1's)", mac, oldPort)
			}
			step("old task reached on node1")

			s.removeService(t, "old"+fmt.Sprint(i))
			lab.Eventually(t, anWait, 250*time.Millisecond, "old task gone from node1", func() error {
				if id := n1.Docker(t, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name=old"+fmt.Sprint(i)); id != "" {
					return fmt.Errorf("container %s still there", id)
				}
				return nil
			})
			p := s.ping(t, ip)
			created := time.Now()
			s.service(t, "new"+fmt.Sprint(i), netName, n2.Name)
			id, ip2 := s.running(t, n2, "new"+fmt.Sprint(i), netName)
			if ip2 != ip {
				p.wait(0)
				t.Fatalf("new task address %s, want %s again", ip2, ip)
			}
			started := s.startedAt(t, n2, id)
			portAtStart := s.fdbPort(t, mac)
			step("new task running on node2 with the same address")

			if tc.opts == nil {
				// The bounded wait: the client must get through while the
				// switch's entry for node1 would still be young (ageing 300 s).
				at, ok := p.wait(5 * time.Second)
				if !ok {
					t.Fatalf("the client did not reach the moved task %s within the bounded wait; switch sends %s to %q", ip, mac, s.fdbPort(t, mac))
				}
				t.Logf("FIGURE announcements: first reply %v after the new container started (%v after service create); switch port at start %q, now %q",
					at.Sub(started).Round(time.Millisecond), at.Sub(created).Round(time.Millisecond), portAtStart, s.fdbPort(t, mac))
				if port := s.fdbPort(t, mac); port != "port2" {
					t.Errorf("switch sends %s to %q, want port2 (node2's)", mac, port)
				}
				return
			}
			t.Logf("baseline: new task running; the switch still sends %s to %q", mac, portAtStart)
			at, ok := p.wait(60 * time.Second)
			if !ok {
				t.Logf("FIGURE baseline: no reply within 60 s of the new task's start; switch sends %s to %q", mac, s.fdbPort(t, mac))
				return
			}
			t.Logf("FIGURE baseline: first reply %v after the new container started (%v after service create); switch port at start %q, now %q",
				at.Sub(started).Round(time.Millisecond), at.Sub(created).Round(time.Millisecond), portAtStart, s.fdbPort(t, mac))
		})
	}
}

// TestAddressCheck: a "foreign host" namespace on the LAN holds the first
// address of a network's --ip-range. With -o address_check=true the task
// given that address fails with the plugin's refusal in `docker service ps
// --no-trunc` (the address, the foreign MAC, the fix), nothing of it is left
// on the node, and the next task gets another address and runs. A `docker
// run --ip` of the taken address is refused with the same message.
func TestAddressCheck(t *testing.T) {
	s := newAnSwarm(t)
	const (
		netName = "chk"
		taken   = "10.95.0.16" // the first address of the range, the first a task gets
	)
	foreignMAC := s.foreignHost(t, "foreign", taken+"/24")
	s.network(t, netName, "--subnet", "10.95.0.0/24", "--gateway", "10.95.0.1", "--ip-range", "10.95.0.16/28",
		"-o", "parent=eth0", "-o", "address_check=true", "-o", "address_check_timeout=150ms")

	n2 := s.l.Node(2)
	s.service(t, "chk", netName, n2.Name)
	id, ip := s.running(t, n2, "chk", netName)
	if ip.String() == taken {
		t.Fatalf("the task runs with %s, which the foreign host holds", taken)
	}
	ps := s.mgr.Docker(t, "service", "ps", "--no-trunc", "--format", "{{.Node}} {{.CurrentState}} {{.Error}}", "chk")
	t.Logf("service ps:\n%s", ps)
	anContains(t, ps, "address "+taken+" is already used", "MAC "+foreignMAC, "--aux-address", "--ip-range")
	t.Logf("running task %s got %s", short12(id), ip)
	// Nothing of the refused task on node2: one host link at most (none:
	// the running task's link is in its container).
	if links := nbLinks(t, n2.NetNSPath()); len(driverLinksOf(links)) != 0 {
		t.Errorf("node2 has host links of the driver: %v", driverLinksOf(links))
	}
	if st := n2.Status(t, anPlugin); len(st.Endpoints) != 1 {
		t.Errorf("node2's plugin holds %d endpoints, want 1 (the running task's): %+v", len(st.Endpoints), st.Endpoints)
	}

	// docker run --ip: the refusal reaches the user directly.
	_, errOut, err := n2.DockerErr("run", "--rm", "--network", netName, "--ip", taken, s.img, "true")
	if err == nil {
		t.Errorf("docker run --ip %s succeeded, want the address check's refusal", taken)
	} else {
		t.Logf("docker run --ip %s: %s", taken, errOut)
		anContains(t, errOut, "address "+taken+" is already used", "MAC "+foreignMAC)
	}
	// What the check costs a container start: docker run --rm … true on
	// node2, alternately on this network (check, 150ms) and on one without
	// it. Printed, never asserted.
	s.network(t, "nochk", "--subnet", "10.94.0.0/24", "--gateway", "10.94.0.1", "-o", "parent=eth0")
	var with, without []time.Duration
	logFrom := logSize(n2)
	for range 5 {
		for _, net := range []string{netName, "nochk"} {
			began := time.Now()
			n2.Docker(t, "run", "--rm", "--network", net, s.img, "true")
			if net == netName {
				with = append(with, time.Since(began))
			} else {
				without = append(without, time.Since(began))
			}
		}
	}
	t.Logf("FIGURE container start (docker run --rm true, attachable swarm network, 5 each): median %v with address_check (150ms), %v without: %v vs %v",
		median(with), median(without), with, without)
	// The plugin's own time for each Join (its debug log), in the order of
	// the runs: with, without, with, …
	joins := joinDurations(t, n2, logFrom)
	if len(joins) != 10 {
		t.Logf("%d Join durations in node2's log, want 10; no Join figure", len(joins))
		return
	}
	var jWith, jWithout []time.Duration
	for i, d := range joins {
		if i%2 == 0 {
			jWith = append(jWith, d)
		} else {
			jWithout = append(jWithout, d)
		}
	}
	t.Logf("FIGURE Join in the plugin: median %v with address_check (150ms), %v without: %v vs %v",
		median(jWith), median(jWithout), jWith, jWithout)
}

// joinDurations reads the plugin's "response method=Join … dur=…" debug lines
// from n's dockerd log, from byte offset on.
func joinDurations(t *testing.T, n *lab.Node, offset int64) []time.Duration {
	t.Helper()
	b, err := os.ReadFile(n.LogPath())
	if err != nil {
		t.Fatal(err)
	}
	var out []time.Duration
	for _, line := range strings.Split(string(b[offset:]), "\n") {
		if !strings.Contains(line, "msg=response method=Join ") {
			continue
		}
		_, rest, ok := strings.Cut(line, " dur=")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		if d, err := time.ParseDuration(strings.TrimRight(f[0], `"`)); err == nil {
			out = append(out, d)
		}
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2].Round(time.Millisecond)
}

func driverLinksOf(links []nbLink) []string {
	var out []string
	for _, l := range links {
		if l.LinkInfo.Kind == "macvlan" && strings.HasPrefix(l.Name, "mvs") {
			out = append(out, l.Name)
		}
	}
	return out
}

// foreignHost makes a namespace plugged into the lab's LAN bridge holding
// addr: a machine Docker does not know. It returns its MAC.
func (s *anSwarm) foreignHost(t *testing.T, role, addr string) string {
	t.Helper()
	ns := "mvs-" + s.l.ID + "-" + role
	port := "p" + role
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	run("ip", "-n", s.l.LANNS, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
	run("ip", "-n", s.l.LANNS, "link", "set", port, "master", "br0", "up")
	run("ip", "-n", ns, "addr", "add", addr, "dev", "eth0")
	run("ip", "-n", ns, "link", "set", "eth0", "up")
	out, err := exec.Command("ip", "-n", ns, "-o", "link", "show", "eth0").Output()
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for i, w := range f {
			if w == "link/ether" && i+1 < len(f) {
				return f[i+1]
			}
		}
	}
	t.Fatalf("no MAC in %q", out)
	return ""
}

// anContains checks a message the user sees mentions each of parts.
func anContains(t *testing.T, msg string, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("%q does not mention %q", msg, p)
		}
	}
}
