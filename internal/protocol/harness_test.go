package protocol_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

// Request bodies for the tests that need no captured one (wiretest has
// those): the ids most methods carry, and a Join.
const (
	idsBody  = `{"NetworkID":"n1","EndpointID":"e1"}`
	joinBody = `{"NetworkID":"n1","EndpointID":"e1","SandboxKey":"/var/run/docker/netns/x"}`
)

// driverMethods are the names of the Driver interface's methods, read from
// the interface itself so that a method added later is covered everywhere.
func driverMethods() []string {
	driver := reflect.TypeFor[protocol.Driver]()
	names := make([]string, driver.NumMethod())
	for i := range names {
		names[i] = driver.Method(i).Name
	}
	return names
}

// quietLog discards everything; tests that look at logs make their own.
func quietLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// answer is what the plugin sent back to one request, however it was sent.
type answer struct {
	req    string // "POST /NetworkDriver.Join", for messages
	status int
	header http.Header
	body   []byte
}

// object checks what every answer must be, whatever its status: of the
// plugin's content type, and a JSON object. It returns the object.
func (a answer) object(t testing.TB) map[string]any {
	t.Helper()
	if ct := a.header.Get("Content-Type"); ct != protocol.ContentType {
		t.Errorf("%s: Content-Type %q, want %q", a.req, ct, protocol.ContentType)
	}
	var obj map[string]any
	if err := json.Unmarshal(a.body, &obj); err != nil || obj == nil {
		t.Fatalf("%s: answer is not a JSON object (%v): %q", a.req, err, a.body)
	}
	return obj
}

// err returns the message of an error answer, failing t unless the answer
// is a JSON object with a non-empty Err.
func (a answer) err(t testing.TB) string {
	t.Helper()
	msg, ok := a.object(t)["Err"].(string)
	if !ok || msg == "" {
		t.Fatalf("%s: error answer has no Err: %s", a.req, a.body)
	}
	return msg
}

// do sends one request straight to h, in process.
func do(h http.Handler, method, path, body string) answer {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
	return answer{req: method + " " + path, status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

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

// unixClient is an HTTP client whose every connection goes to the socket at
// path, the way the engine reaches a plugin.
func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// pluginClient talks HTTP to a handler served on a real unix socket.
type pluginClient struct {
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

	client := unixClient(path)
	t.Cleanup(func() {
		client.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve returned %v after shutdown, want nil", err)
		}
	})
	return &pluginClient{http: client}
}

// post sends body to path like the engine does and returns what came back.
func (c *pluginClient) post(t testing.TB, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, "http://plugin"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/vnd.docker.plugins.v1.2+json")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: read response: %v", path, err)
	}
	return answer{req: "POST " + path, status: resp.StatusCode, header: resp.Header, body: out}
}
