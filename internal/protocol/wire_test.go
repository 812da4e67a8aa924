package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol/wiretest"
)

var update = flag.Bool("update", false, "rewrite testdata/responses/*.json from the current output")

// asJSONValue decodes b into generic JSON values for comparison.
func asJSONValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// TestEngineRequests posts every captured request over a real unix socket
// and checks that (a) the answer is a 200 JSON object and (b) the driver got
// the request decoded completely and correctly.
func TestEngineRequests(t *testing.T) {
	fake := newFake()
	c := serveUnix(t, protocol.NewHandler(fake, quietLog()))
	checks := requestChecks()
	checked := map[string]bool{}
	perMethod := map[string]int{}

	captures := wiretest.Captures()
	if len(captures) != 374 {
		t.Fatalf("found %d captured requests, want the 374 recorded from the engines", len(captures))
	}
	for _, capture := range captures {
		name, method, body := capture.Name, capture.Method, capture.Body
		check, hasCheck := checks[name]
		checked[name] = hasCheck
		perMethod[method]++
		t.Run(name, func(t *testing.T) {
			before := len(fake.Calls())
			a := c.post(t, "/NetworkDriver."+method, string(body))
			if a.status != http.StatusOK {
				t.Fatalf("status %d, want 200; body %s", a.status, a.body)
			}
			a.object(t)

			calls := fake.Calls()
			if len(calls) != before+1 {
				t.Fatalf("driver got %d calls, want 1", len(calls)-before)
			}
			got := calls[len(calls)-1]
			if got.Method != method {
				t.Errorf("driver method %s was called, want %s", got.Method, method)
			}

			// Nothing the engine sent may be lost or altered by decoding: the
			// decoded request, encoded again, must hold every value sent.
			if len(body) > 0 {
				again, err := json.Marshal(got.Req)
				if err != nil {
					t.Fatalf("re-encode request: %v", err)
				}
				if diff := jsonCovers("", asJSONValue(t, body), asJSONValue(t, again)); diff != "" {
					t.Errorf("decoding lost or changed %s\nsent:    %s\ndecoded: %s", diff, body, again)
				}
			}

			if hasCheck {
				check(t, got.Req)
			}
		})
	}

	for name := range checks {
		if !checked[name] {
			t.Errorf("check for %s did not run: no such captured file", name)
		}
	}
	for _, m := range []string{"GetCapabilities", "DiscoverNew", "AllocateNetwork", "FreeNetwork",
		"CreateNetwork", "DeleteNetwork", "CreateEndpoint", "EndpointOperInfo", "DeleteEndpoint",
		"Join", "Leave", "ProgramExternalConnectivity", "RevokeExternalConnectivity", "GwAllocCheck"} {
		if perMethod[m] == 0 {
			t.Errorf("no captured request exercised %s", m)
		}
	}
}

// requestChecks holds specific assertions about how particular captured
// requests decode, keyed by "<engine>/<file>".
func requestChecks() map[string]func(*testing.T, any) {
	const (
		localNet  = "2c20220f87039cc8b3aebcc18cbaa04fa2a2a901fd3369aad12428d6b54a36df"
		r1        = "0114be5fcd92206a4cc69bb83dbaf1e97351bc3590c34bc9ede1aac0a2e39225"
		swarmNet  = "cjopjxmcunoviz839i3coqb8c"
		swarmNet6 = "q7jcykt6bl97zk8o6in9b1rbg"
	)
	return map[string]func(*testing.T, any){
		"engine-20.10-swarm/0007-AllocateNetwork.json": func(t *testing.T, v any) {
			r := v.(*protocol.AllocateNetworkRequest)
			eq(t, "NetworkID", r.NetworkID, swarmNet)
			eq(t, "len(NetworkID)", len(r.NetworkID), 25)
			eq(t, "Options[parent]", r.Options["parent"], "barp0")
			eq(t, "Options[mtu]", r.Options[protocol.OptionMTU], "1400")
			eq(t, "len(IPv4Data)", len(r.IPv4Data), 1)
			eq(t, "IPv4Data[0]", r.IPv4Data[0], protocol.IPAMData{Pool: "10.61.0.0/24", Gateway: "10.61.0.1/24"})
			eq(t, "IPv6Data is nil", r.IPv6Data == nil, true)
		},
		"engine-26.1-swarm/0005-AllocateNetwork.json": func(t *testing.T, v any) {
			r := v.(*protocol.AllocateNetworkRequest)
			eq(t, "NetworkID", r.NetworkID, swarmNet6)
			// The leader sends the IPv6 pool inside IPv4Data.
			eq(t, "len(IPv4Data)", len(r.IPv4Data), 2)
			eq(t, "IPv4Data[1]", r.IPv4Data[1], protocol.IPAMData{Pool: "fd00:62::/64", Gateway: "fd00:62::1/64"})
			eq(t, "IPv6Data is nil", r.IPv6Data == nil, true)
		},
		"engine-26.1-swarm/0069-FreeNetwork.json": func(t *testing.T, v any) {
			eq(t, "NetworkID", v.(*protocol.FreeNetworkRequest).NetworkID, "1wxkj1lh60qb3cahq0m5iy2uj")
		},
		"engine-20.10-local/0007-CreateNetwork.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateNetworkRequest)
			eq(t, "NetworkID", r.NetworkID, localNet)
			eq(t, "len(NetworkID)", len(r.NetworkID), 64)
			generic, ok := r.Options[protocol.OptionGeneric].(map[string]any)
			if !ok {
				t.Fatalf("Options[%s] is %T, want map[string]any", protocol.OptionGeneric, r.Options[protocol.OptionGeneric])
			}
			eq(t, "generic[parent]", generic["parent"], any("barp0"))
			eq(t, "generic[mtu]", generic[protocol.OptionMTU], any("1400"))
			eq(t, "Options[enable_ipv6]", r.Options[protocol.OptionEnableIPv6], any(false))
			_, internal := r.Options[protocol.OptionInternal]
			eq(t, "internal present", internal, false)
			eq(t, "IPv4Data", r.IPv4Data, []protocol.IPAMData{{AddressSpace: "LocalDefault", Pool: "10.61.0.0/24", Gateway: "10.61.0.1/24"}})
			eq(t, "IPv6Data is empty, not nil", r.IPv6Data != nil && len(r.IPv6Data) == 0, true)
		},
		"engine-20.10-local/0009-CreateNetwork.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateNetworkRequest)
			eq(t, "Options[internal]", r.Options[protocol.OptionInternal], any(true))
		},
		"engine-20.10-swarm/0010-CreateNetwork.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateNetworkRequest)
			eq(t, "NetworkID", r.NetworkID, swarmNet)
			eq(t, "IPv4Data[0].AddressSpace", r.IPv4Data[0].AddressSpace, "LocalDefault")
			eq(t, "IPv4Data[0].Gateway", r.IPv4Data[0].Gateway, "10.61.0.1/24")
		},
		"engine-26.1-swarm/0018-CreateNetwork.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateNetworkRequest)
			eq(t, "len(NetworkID)", len(r.NetworkID), 25)
			eq(t, "Options[enable_ipv6]", r.Options[protocol.OptionEnableIPv6], any(true))
			eq(t, "IPv6Data", r.IPv6Data, []protocol.IPAMData{{AddressSpace: "LocalDefault", Pool: "fd00:62::/64", Gateway: "fd00:62::1/64"}})
		},
		"engine-20.10-local/0010-CreateEndpoint.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateEndpointRequest)
			eq(t, "EndpointID", r.EndpointID, r1)
			eq(t, "Interface", *r.Interface, protocol.EndpointInterface{Address: "10.61.0.2/24"})
			eq(t, "Options[exposedports]", r.Options["com.docker.network.endpoint.exposedports"], any([]any{}))
		},
		"engine-26.1-standalone/0010-CreateEndpoint.json": func(t *testing.T, v any) { // r2, --mac-address
			r := v.(*protocol.CreateEndpointRequest)
			eq(t, "Interface.MacAddress", r.Interface.MacAddress, "02:aa:bb:cc:dd:01")
			eq(t, "Interface.Address", r.Interface.Address, "10.61.0.50/24")
			eq(t, "Options[macaddress]", r.Options["com.docker.network.endpoint.macaddress"], any("Aqq7zN0B"))
		},
		"engine-20.10-local/0020-CreateEndpoint.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateEndpointRequest)
			eq(t, "Interface.AddressIPv6", r.Interface.AddressIPv6, "fd00:62::2/64")
		},
		"engine-26.1-swarm/0025-CreateEndpoint.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateEndpointRequest)
			eq(t, "Options is empty, not nil", r.Options != nil && len(r.Options) == 0, true)
		},
		"engine-20.10-local/0011-Join.json": func(t *testing.T, v any) {
			r := v.(*protocol.JoinRequest)
			eq(t, "NetworkID", r.NetworkID, localNet)
			eq(t, "EndpointID", r.EndpointID, r1)
			eq(t, "SandboxKey", r.SandboxKey, "/var/run/docker/netns/5efb1c1f1b04")
		},
		"engine-20.10-local/0012-ProgramExternalConnectivity.json": func(t *testing.T, v any) {
			r := v.(*protocol.ExternalConnectivityRequest)
			eq(t, "EndpointID", r.EndpointID, r1)
			eq(t, "Options[portmap]", r.Options["com.docker.network.portmap"], any([]any{}))
		},
		"engine-20.10-local/0032-RevokeExternalConnectivity.json": func(t *testing.T, v any) {
			r := v.(*protocol.ExternalConnectivityRequest)
			eq(t, "EndpointID", r.EndpointID, r1)
			eq(t, "Options is nil", r.Options == nil, true)
		},
		"engine-20.10-local/0013-EndpointOperInfo.json": func(t *testing.T, v any) {
			r := v.(*protocol.EndpointOperInfoRequest)
			eq(t, "ids", [2]string{r.NetworkID, r.EndpointID}, [2]string{localNet, r1})
		},
		"engine-20.10-local/0038-Leave.json": func(t *testing.T, v any) {
			r := v.(*protocol.LeaveRequest)
			eq(t, "EndpointID", r.EndpointID, "5fa3b9b4f0a7b0898cef930901690a9d46ddc4d2c538c481299b6d70d139b124")
		},
		"engine-20.10-local/0049-DeleteEndpoint.json": func(t *testing.T, v any) {
			r := v.(*protocol.DeleteEndpointRequest)
			eq(t, "ids", [2]string{r.NetworkID, r.EndpointID}, [2]string{localNet, r1})
		},
		"engine-26.1-swarm/0074-DeleteNetwork.json": func(t *testing.T, v any) {
			eq(t, "NetworkID", v.(*protocol.DeleteNetworkRequest).NetworkID, "1wxkj1lh60qb3cahq0m5iy2uj")
		},
		"engine-26.1-swarm/0002-DiscoverNew.json": func(t *testing.T, v any) {
			r := v.(*protocol.DiscoveryNotification)
			eq(t, "DiscoveryType", r.DiscoveryType, 1)
			eq(t, "DiscoveryData", r.DiscoveryData, any(map[string]any{"Address": "127.0.0.1", "BindAddress": "127.0.0.1", "Self": true}))
		},
		"engine-26.1-swarm/0001-GetCapabilities.json": func(t *testing.T, v any) {
			eq(t, "request", v, nil)
		},
		// Engine 28.5: what is new on the wire.
		"engine-28.5-standalone/0006-GwAllocCheck.json": func(t *testing.T, v any) {
			r := v.(*protocol.GwAllocCheckRequest)
			eq(t, "Options[internal]", r.Options[protocol.OptionInternal], any(true))
			eq(t, "Options[enable_ipv4]", r.Options[protocol.OptionEnableIPv4], any(true))
		},
		"engine-28.5-standalone/0007-CreateNetwork.json": func(t *testing.T, v any) {
			// The internal network, after the plugin said it needs no
			// gateway: IPAM reserved none.
			r := v.(*protocol.CreateNetworkRequest)
			eq(t, "Options[internal]", r.Options[protocol.OptionInternal], any(true))
			eq(t, "IPv4Data", r.IPv4Data, []protocol.IPAMData{{AddressSpace: "GlobalDefault", Pool: "10.63.0.0/24"}})
		},
		"engine-28.5-standalone/0009-CreateNetwork.json": func(t *testing.T, v any) {
			// --ipv4=false: no IPv4 pool at all.
			r := v.(*protocol.CreateNetworkRequest)
			eq(t, "Options[enable_ipv4]", r.Options[protocol.OptionEnableIPv4], any(false))
			eq(t, "len(IPv4Data)", len(r.IPv4Data), 0)
			eq(t, "IPv6Data", r.IPv6Data, []protocol.IPAMData{{AddressSpace: "GlobalDefault", Pool: "fd00:64::/64", Gateway: "fd00:64::1/64"}})
		},
		"engine-28.5-standalone/0029-CreateEndpoint.json": func(t *testing.T, v any) {
			r := v.(*protocol.CreateEndpointRequest)
			eq(t, "Options[ifname]", r.Options["com.docker.network.endpoint.ifname"], any("lan0"))
		},
	}
}

// jsonCovers reports where got (a decoded request encoded again) does not
// hold the value sent. Keys only in got must hold a zero value: they are
// fields the engine left out, such as Options of RevokeExternalConnectivity.
func jsonCovers(at string, sent, got any) string {
	switch s := sent.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return fmt.Sprintf("%s (an object became %v)", at, got)
		}
		for k, v := range s {
			gv, ok := g[k]
			if !ok {
				return at + "." + k + " (missing)"
			}
			if diff := jsonCovers(at+"."+k, v, gv); diff != "" {
				return diff
			}
		}
		for k, v := range g {
			if _, sentToo := s[k]; !sentToo && v != nil && v != "" && v != false && v != float64(0) {
				return fmt.Sprintf("%s.%s (not sent, decoded as %v)", at, k, v)
			}
		}
		return ""
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(s) {
			return fmt.Sprintf("%s (sent %v, decoded %v)", at, sent, got)
		}
		for i := range s {
			if diff := jsonCovers(fmt.Sprintf("%s[%d]", at, i), s[i], g[i]); diff != "" {
				return diff
			}
		}
		return ""
	default:
		if sent != got {
			return fmt.Sprintf("%s (sent %v, decoded %v)", at, sent, got)
		}
		return ""
	}
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// TestGoldenResponses checks the exact bytes sent back for typical driver
// answers against testdata/responses/<name>.json. Run with -update to
// rewrite the files after an intended change, then review the diff.
func TestGoldenResponses(t *testing.T) {
	mac := &protocol.CreateEndpointResponse{Interface: &protocol.EndpointInterfaceResponse{MacAddress: "02:42:0a:3d:00:02"}}
	cases := []struct {
		name   string // golden file
		path   string
		wire   string // captured request to send, "" for none
		body   string // request body when wire is ""
		set    func(*fakeDriver)
		status int
	}{
		{name: "activate", path: "/Plugin.Activate"},
		{name: "capabilities-global", path: "/NetworkDriver.GetCapabilities"},
		{name: "capabilities-local", path: "/NetworkDriver.GetCapabilities", set: func(f *fakeDriver) {
			f.caps = &protocol.CapabilitiesResponse{Scope: protocol.ScopeLocal, ConnectivityScope: protocol.ScopeGlobal}
		}},
		{name: "allocate-network", path: "/NetworkDriver.AllocateNetwork", wire: "engine-20.10-swarm/0007-AllocateNetwork.json"},
		{name: "create-endpoint-mac", path: "/NetworkDriver.CreateEndpoint", wire: "engine-20.10-local/0010-CreateEndpoint.json",
			set: func(f *fakeDriver) { f.endpoint = mac }},
		{name: "create-endpoint-nothing", path: "/NetworkDriver.CreateEndpoint", wire: "engine-20.10-local/0015-CreateEndpoint.json",
			set: func(f *fakeDriver) { f.endpoint = &protocol.CreateEndpointResponse{} }},
		{name: "endpoint-oper-info", path: "/NetworkDriver.EndpointOperInfo", wire: "engine-20.10-local/0013-EndpointOperInfo.json"},
		{name: "join", path: "/NetworkDriver.Join", wire: "engine-20.10-local/0011-Join.json", set: func(f *fakeDriver) {
			f.join = &protocol.JoinResponse{
				InterfaceName:         &protocol.InterfaceName{SrcName: "mvs-0114be5fcd9", DstPrefix: "eth"},
				Gateway:               "10.61.0.1",
				StaticRoutes:          []protocol.StaticRoute{}, // empty: no key at all
				DisableGatewayService: true,
			}
		}},
		{name: "join-internal", path: "/NetworkDriver.Join", wire: "engine-20.10-local/0026-Join.json", set: func(f *fakeDriver) {
			f.join = &protocol.JoinResponse{
				InterfaceName:         &protocol.InterfaceName{SrcName: "mvs-9326e42e078", DstPrefix: "eth"},
				DisableGatewayService: true,
			}
		}},
		{name: "ack", path: "/NetworkDriver.DeleteNetwork", wire: "engine-20.10-local/0053-DeleteNetwork.json"},
		{name: "error", path: "/NetworkDriver.CreateNetwork", wire: "engine-20.10-local/0007-CreateNetwork.json", set: func(f *fakeDriver) {
			f.err = errors.New(`parent "eth9" not found on this node (interfaces: eth0, ens18)`)
		}, status: http.StatusInternalServerError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake()
			if tc.set != nil {
				tc.set(fake)
			}
			body := tc.body
			if tc.wire != "" {
				body = string(wiretest.Read(t, tc.wire))
			}
			c := serveUnix(t, protocol.NewHandler(fake, quietLog()))
			a := c.post(t, tc.path, body)

			want := tc.status
			if want == 0 {
				want = http.StatusOK
			}
			if a.status != want {
				t.Errorf("status %d, want %d", a.status, want)
			}
			a.object(t)

			golden := filepath.Join("testdata", "responses", tc.name+".json")
			got := bytes.TrimSuffix(a.body, []byte("\n"))
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantBody, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if wantBody = bytes.TrimSuffix(wantBody, []byte("\n")); !bytes.Equal(got, wantBody) {
				t.Errorf("response differs from %s\ngot:  %s\nwant: %s", golden, got, wantBody)
			}
		})
	}
}
