package protocol_test

import (
	"maps"
	"sync"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// recorded is one call the fake driver received.
type recorded struct {
	Method string
	Req    any // the decoded request pointer; nil for GetCapabilities
}

// fakeDriver records every call and answers with canned responses. It sits
// below the layer under test: these tests are about decoding and encoding,
// not about what a driver decides. Configure it before serving with it.
type fakeDriver struct {
	caps     *protocol.CapabilitiesResponse
	endpoint *protocol.CreateEndpointResponse
	join     *protocol.JoinResponse
	operInfo *protocol.EndpointOperInfoResponse
	err      error         // returned by every call when set
	panicMsg string        // every call panics with it when set
	release  chan struct{} // when set, every call waits until it is closed
	started  chan string   // when set, receives the method name as a call starts

	mu    sync.Mutex
	calls []recorded
}

func newFake() *fakeDriver {
	return &fakeDriver{
		caps:     &protocol.CapabilitiesResponse{Scope: protocol.ScopeGlobal, ConnectivityScope: protocol.ScopeGlobal},
		endpoint: &protocol.CreateEndpointResponse{},
		operInfo: &protocol.EndpointOperInfoResponse{Value: map[string]any{}},
		join: &protocol.JoinResponse{
			InterfaceName:         &protocol.InterfaceName{SrcName: "mvs-test", DstPrefix: "eth"},
			DisableGatewayService: true,
		},
	}
}

func (f *fakeDriver) record(method string, req any) error {
	f.mu.Lock()
	f.calls = append(f.calls, recorded{Method: method, Req: req})
	f.mu.Unlock()
	if f.started != nil {
		f.started <- method
	}
	if f.release != nil {
		<-f.release
	}
	if f.panicMsg != "" {
		panic(f.panicMsg)
	}
	return f.err
}

// Calls returns a copy of the calls received so far.
func (f *fakeDriver) Calls() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.calls...)
}

// last returns the most recent call, failing the test when there is none.
func (f *fakeDriver) last(t *testing.T) recorded {
	t.Helper()
	calls := f.Calls()
	if len(calls) == 0 {
		t.Fatal("the driver was not called")
	}
	return calls[len(calls)-1]
}

func (f *fakeDriver) GetCapabilities() (*protocol.CapabilitiesResponse, error) {
	if err := f.record("GetCapabilities", nil); err != nil {
		return nil, err
	}
	return f.caps, nil
}

// AllocateNetwork echoes the user's options, as the real driver does.
func (f *fakeDriver) AllocateNetwork(r *protocol.AllocateNetworkRequest) (*protocol.AllocateNetworkResponse, error) {
	if err := f.record("AllocateNetwork", r); err != nil {
		return nil, err
	}
	return &protocol.AllocateNetworkResponse{Options: maps.Clone(r.Options)}, nil
}

func (f *fakeDriver) FreeNetwork(r *protocol.FreeNetworkRequest) error {
	return f.record("FreeNetwork", r)
}

func (f *fakeDriver) CreateNetwork(r *protocol.CreateNetworkRequest) error {
	return f.record("CreateNetwork", r)
}

func (f *fakeDriver) DeleteNetwork(r *protocol.DeleteNetworkRequest) error {
	return f.record("DeleteNetwork", r)
}

func (f *fakeDriver) CreateEndpoint(r *protocol.CreateEndpointRequest) (*protocol.CreateEndpointResponse, error) {
	if err := f.record("CreateEndpoint", r); err != nil {
		return nil, err
	}
	return f.endpoint, nil
}

func (f *fakeDriver) EndpointOperInfo(r *protocol.EndpointOperInfoRequest) (*protocol.EndpointOperInfoResponse, error) {
	if err := f.record("EndpointOperInfo", r); err != nil {
		return nil, err
	}
	return f.operInfo, nil
}

func (f *fakeDriver) DeleteEndpoint(r *protocol.DeleteEndpointRequest) error {
	return f.record("DeleteEndpoint", r)
}

func (f *fakeDriver) Join(r *protocol.JoinRequest) (*protocol.JoinResponse, error) {
	if err := f.record("Join", r); err != nil {
		return nil, err
	}
	return f.join, nil
}

func (f *fakeDriver) Leave(r *protocol.LeaveRequest) error {
	return f.record("Leave", r)
}

func (f *fakeDriver) ProgramExternalConnectivity(r *protocol.ExternalConnectivityRequest) error {
	return f.record("ProgramExternalConnectivity", r)
}

func (f *fakeDriver) RevokeExternalConnectivity(r *protocol.ExternalConnectivityRequest) error {
	return f.record("RevokeExternalConnectivity", r)
}

func (f *fakeDriver) DiscoverNew(r *protocol.DiscoveryNotification) error {
	return f.record("DiscoverNew", r)
}

func (f *fakeDriver) DiscoverDelete(r *protocol.DiscoveryNotification) error {
	return f.record("DiscoverDelete", r)
}

func (f *fakeDriver) GwAllocCheck(r *protocol.GwAllocCheckRequest) (*protocol.GwAllocCheckResponse, error) {
	if err := f.record("GwAllocCheck", r); err != nil {
		return nil, err
	}
	return &protocol.GwAllocCheckResponse{}, nil
}
