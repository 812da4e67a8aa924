package protocol_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

func (f *fakeDriver) GwAllocCheck(r *protocol.GwAllocCheckRequest) (*protocol.GwAllocCheckResponse, error) {
	if err := f.record("GwAllocCheck", r); err != nil {
		return nil, err
	}
	return &protocol.GwAllocCheckResponse{}, nil
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

var _ protocol.Driver = (*fakeDriver)(nil)

// quietLog discards everything; tests that look at logs make their own.
func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// socketDir returns a short temporary directory: unix socket paths must stay
// under 108 bytes, which t.TempDir() with a long test name can exceed.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "mvs-proto-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// pluginClient talks HTTP to a handler served on a real unix socket, the
// way the engine does.
type pluginClient struct {
	t    *testing.T
	http *http.Client
}

// serveUnix serves h with Listen and Serve on a fresh socket and returns a
// client for it. Cleanup stops the server and checks Serve returned nil.
func serveUnix(t *testing.T, h http.Handler) *pluginClient {
	t.Helper()
	path := filepath.Join(socketDir(t), "plugins", "test.sock") // parent created by Listen
	l, err := protocol.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- protocol.Serve(ctx, l, h) }()

	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after shutdown, want nil", err)
		}
	})
	return &pluginClient{t: t, http: &http.Client{Transport: tr}}
}

// post sends body to path like the engine does and returns what came back.
func (c *pluginClient) post(path string, body []byte) (int, http.Header, []byte) {
	c.t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://plugin"+path, bytes.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		c.t.Fatalf("POST %s: read response: %v", path, err)
	}
	return resp.StatusCode, resp.Header, out
}
