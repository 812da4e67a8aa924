package protocol_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

func TestSocketPath(t *testing.T) {
	cases := []struct{ in, want string }{
		{"macvlan-swarm.sock", "/run/docker/plugins/macvlan-swarm.sock"},
		{"macvlan-swarm", "/run/docker/plugins/macvlan-swarm"}, // no extension added
		{"/run/docker/plugins/x.sock", "/run/docker/plugins/x.sock"},
		{"/tmp/test/p.sock", "/tmp/test/p.sock"},
		{"./p.sock", "./p.sock"},
		{"", ""},
	}
	for _, tc := range cases {
		if got := protocol.SocketPath(tc.in); got != tc.want {
			t.Errorf("SocketPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestListenCreatesDirAndSocket(t *testing.T) {
	dir := filepath.Join(socketDir(t), "run", "plugins")
	path := filepath.Join(dir, "p.sock")
	l, err := protocol.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o755 {
		t.Errorf("socket directory mode %v, want 0755", perm)
	}
	fi, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		t.Errorf("%s is %v, want a socket", path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode %v, want 0600", perm)
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "p.sock")
	old, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	// Leave the file behind, as a killed process does.
	old.(*net.UnixListener).SetUnlinkOnClose(false)
	old.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}

	l, err := protocol.Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	defer l.Close()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial the new socket: %v", err)
	}
	conn.Close()
}

func TestListenRefusesLiveSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "p.sock")
	live, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	l, err := protocol.Listen(path)
	if err == nil {
		l.Close()
		t.Fatal("Listen took over a socket another process listens on")
	}
	if !strings.Contains(err.Error(), "in use") {
		t.Errorf("error %q does not say the socket is in use", err)
	}
	// The live listener still works.
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("live socket was disturbed: %v", err)
	}
	conn.Close()
}

func TestListenRefusesNonSocket(t *testing.T) {
	path := filepath.Join(socketDir(t), "p.sock")
	if err := os.WriteFile(path, []byte("keep me"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := protocol.Listen(path)
	if err == nil {
		l.Close()
		t.Fatal("Listen replaced a regular file")
	}
	if !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("error %q does not say the path is not a socket", err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "keep me" {
		t.Errorf("regular file was touched: %q, %v", b, err)
	}
}

func TestListenRejectsBadPaths(t *testing.T) {
	long := "/tmp/" + strings.Repeat("x", 120) + ".sock"
	for _, p := range []string{"", long} {
		if l, err := protocol.Listen(p); err == nil {
			l.Close()
			t.Errorf("Listen(%q) succeeded", p)
		}
	}
	_, err := protocol.Listen(long)
	if err == nil || !strings.Contains(err.Error(), "at most 107") {
		t.Errorf("Listen(long path) error %v, want one naming the limit", err)
	}
}

// TestServeShutdown checks that cancelling the context lets a call in flight
// finish, stops serving, removes the socket file and returns nil.
func TestServeShutdown(t *testing.T) {
	path := filepath.Join(socketDir(t), "p.sock")
	l, err := protocol.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	fake := newFake()
	fake.started = make(chan string, 1)
	fake.release = make(chan struct{})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- protocol.Serve(ctx, l, protocol.NewHandler(fake, quietLog())) }()

	client := unixClient(path)
	type result struct {
		status int
		err    error
	}
	answered := make(chan result, 1)
	go func() {
		resp, err := client.Post("http://plugin/NetworkDriver.Leave", protocol.ContentType, strings.NewReader(idsBody))
		if err != nil {
			answered <- result{err: err}
			return
		}
		resp.Body.Close()
		answered <- result{status: resp.StatusCode}
	}()

	<-fake.started // the call is in the driver
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned (%v) while a call was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(fake.release)

	if r := <-answered; r.err != nil || r.status != http.StatusOK {
		t.Errorf("in-flight call: status %d, error %v; want 200", r.status, r.err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve returned %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after shutdown")
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there after shutdown: %v", err)
	}
}

func TestServeReportsListenerFailure(t *testing.T) {
	l, err := protocol.Listen(filepath.Join(socketDir(t), "p.sock"))
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	err = protocol.Serve(context.Background(), l, protocol.NewHandler(newFake(), quietLog()))
	if err == nil {
		t.Fatal("Serve on a closed listener returned nil")
	}
}

func TestServeWithDoneContext(t *testing.T) {
	path := filepath.Join(socketDir(t), "p.sock")
	l, err := protocol.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := protocol.Serve(ctx, l, protocol.NewHandler(newFake(), quietLog())); err != nil {
		t.Fatalf("Serve with a done context returned %v, want nil", err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket file still there: %v", err)
	}
}
