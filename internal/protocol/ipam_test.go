package protocol_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/ipam"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

// The IPAM protocol over the real socket, served by the real address
// manager on a real state file, with the bodies an engine sends (bare
// addresses in, CIDR addresses out).
func TestIPAMOverTheSocket(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	m, err := ipam.New(ipam.Config{Store: st, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	c := serveUnix(t, protocol.NewHandler(newFake(), quietLog(), protocol.WithIPAM(m)))

	want := func(path, body, wantBody string) map[string]any {
		t.Helper()
		a := c.post(t, path, body)
		if a.status != http.StatusOK {
			t.Fatalf("%s: status %d, body %s", path, a.status, a.body)
		}
		if wantBody != "" && strings.TrimSpace(string(a.body)) != wantBody {
			t.Fatalf("%s: body %s, want %s", path, a.body, wantBody)
		}
		return a.object(t)
	}
	want("/Plugin.Activate", "", `{"Implements":["NetworkDriver","IpamDriver"]}`)
	want("/IpamDriver.GetCapabilities", "", `{"RequiresMACAddress":false,"RequiresRequestReplay":false}`)
	want("/IpamDriver.GetDefaultAddressSpaces", "", `{"LocalDefaultAddressSpace":"macvlan-swarm-local","GlobalDefaultAddressSpace":"macvlan-swarm-global"}`)
	pool := want("/IpamDriver.RequestPool", `{"AddressSpace":"macvlan-swarm-global","Pool":"10.1.0.0/24","SubPool":"10.1.0.128/25","Options":{},"V6":false}`, "")
	id, _ := pool["PoolID"].(string)
	if !strings.HasPrefix(id, "10.1.0.0/24@") || pool["Pool"] != "10.1.0.0/24" {
		t.Fatalf("RequestPool answered %v", pool)
	}
	gw := want("/IpamDriver.RequestAddress", `{"PoolID":"`+id+`","Address":"10.1.0.1","Options":{"RequestAddressType":"com.docker.network.gateway"}}`, "")
	if gw["Address"] != "10.1.0.1/24" {
		t.Fatalf("gateway: %v", gw)
	}
	a := want("/IpamDriver.RequestAddress", `{"PoolID":"`+id+`","Address":"","Options":null}`, "")
	if a["Address"] != "10.1.0.128/24" {
		t.Fatalf("first address: %v, want 10.1.0.128/24", a)
	}
	want("/IpamDriver.ReleaseAddress", `{"PoolID":"`+id+`","Address":"10.1.0.128"}`, "{}")
	if b := want("/IpamDriver.RequestAddress", `{"PoolID":"`+id+`"}`, ""); b["Address"] != "10.1.0.129/24" {
		t.Fatalf("after giving .128 back: %v, want 10.1.0.129/24", b)
	}
	// An empty body (the engine's retry after a crash) is refused, and the
	// refusal is the engine's {"Err"} shape.
	if r := c.post(t, "/IpamDriver.RequestAddress", ""); r.status == http.StatusOK || !strings.Contains(r.err(t), "without a pool id") {
		t.Fatalf("empty RequestAddress: %d %s", r.status, r.body)
	}
	want("/IpamDriver.ReleasePool", `{"PoolID":"`+id+`"}`, "{}")
	if len(m.Status().Pools) != 0 {
		t.Fatalf("pools after ReleasePool: %+v", m.Status().Pools)
	}
}

// Without WithIPAM the plugin is a network driver only.
func TestNoIPAMRoutesWithoutIPAM(t *testing.T) {
	h := protocol.NewHandler(newFake(), quietLog())
	if a := do(h, http.MethodPost, "/Plugin.Activate", ""); strings.TrimSpace(string(a.body)) != `{"Implements":["NetworkDriver"]}` {
		t.Fatalf("Activate: %s", a.body)
	}
	if a := do(h, http.MethodPost, "/IpamDriver.RequestPool", `{"Pool":"10.1.0.0/24"}`); a.status != http.StatusNotFound {
		t.Fatalf("RequestPool without an IPAM: status %d, body %s", a.status, a.body)
	}
}
