package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/store"
)

func TestParseSettingsEnvAndFlags(t *testing.T) {
	env := map[string]string{"SCOPE": "local", "LOG_LEVEL": "debug", "PARENTS": "lan=eth0"}
	s, err := parseSettings([]string{"-log-level", "warn"}, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if s.scope != "local" || s.logLevel != "warn" || s.parents != "lan=eth0" || s.socket != "macvlan-swarm.sock" {
		t.Fatalf("settings = %+v", s)
	}
	if _, err := parseSettings([]string{"extra"}, func(string) string { return "" }); err == nil {
		t.Fatal("a stray argument was accepted")
	}
}

func TestNewLoggerRefusesUnknownLevel(t *testing.T) {
	if _, err := newLogger("loud"); err == nil || !strings.Contains(err.Error(), "use debug, info, warn or error") {
		t.Fatalf("err = %v", err)
	}
}

// TestListensBeforeSlowStartupWork runs the real binary while the test holds
// the state file's lock, so the daemon is stuck in its start-up work. The
// socket must already accept connections, and the request sent then must be
// answered once the lock is released.
func TestListensBeforeSlowStartupWork(t *testing.T) {
	dir := t.TempDir()
	bin := binary(t)
	stateDir := filepath.Join(dir, "state")
	held, err := store.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "p.sock")
	cmd := exec.Command(bin, "-socket", sock, "-state-dir", stateDir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	var conn net.Conn
	for i := 0; i < 200 && conn == nil; i++ {
		conn, _ = net.Dial("unix", sock)
		time.Sleep(10 * time.Millisecond)
	}
	if conn == nil {
		t.Fatal("socket never accepted a connection while start-up work was blocked")
	}
	conn.Close()

	client := unixClient(sock)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := client.Post("http://plugin/NetworkDriver.GetCapabilities", "application/json", nil)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{string(b), err}
	}()
	select {
	case r := <-done:
		t.Fatalf("answered while the state file was still locked: %+v", r)
	case <-time.After(300 * time.Millisecond):
	}
	held.Close()
	r := <-done
	if r.err != nil || !strings.Contains(r.body, `"Scope":"global"`) {
		t.Fatalf("after start-up: %+v", r)
	}
}

// unixClient is an HTTP client whose every request goes to the socket.
func unixClient(sock string) *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
}
