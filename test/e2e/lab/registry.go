//go:build e2e

package lab

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
	"github.com/macvlan-swarm/macvlan-swarm/internal/pluginpush/registrytest"
)

// RegistryAddr is where the lab registry listens: the lan bridge's address.
const RegistryAddr = BridgeAddr + ":5000"

type registry struct {
	proc *os.Process
	done chan struct{}
	log  string
}

// StartRegistry starts a docker-registry (distribution 2.8) in the lan
// namespace, storing into the lab directory, and returns its address
// "10.99.0.1:5000". Every node reaches it over its LAN link; the engines
// accept plain HTTP from it (--insecure-registry). Calling it again returns
// the running one. It is stopped by the lab's teardown.
func (l *Lab) StartRegistry(t testing.TB) string {
	t.Helper()
	l.regMu.Lock()
	defer l.regMu.Unlock()
	if l.registry != nil {
		return RegistryAddr
	}
	if _, err := os.Stat(registryPath); err != nil {
		t.Fatalf("lab: %s missing (apt-get install -y docker-registry)", registryPath)
	}
	dir := filepath.Join(l.Dir, "registry")
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o755); err != nil {
		t.Fatalf("lab: %v", err)
	}
	cfgPath := filepath.Join(dir, "config.yml")
	if err := registrytest.WriteConfig(cfgPath, RegistryAddr, filepath.Join(dir, "data")); err != nil {
		t.Fatalf("lab: %v", err)
	}
	logPath := filepath.Join(dir, "registry.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	defer logf.Close()

	cmd := exec.Command("nsenter", "--net=/run/netns/"+l.LANNS, "--", registryPath, "serve", cfgPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("lab: start registry: %v", err)
	}
	r := &registry{proc: cmd.Process, done: make(chan struct{}), log: logPath}
	go func() {
		_ = cmd.Wait()
		close(r.done)
	}()
	l.registry = r
	// The pidfile is for the cleanup command, should this test die.
	_ = os.WriteFile(filepath.Join(dir, "registry.pid"), []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o644)

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-r.done:
			t.Fatalf("lab: registry exited at start-up; log:\n%s", tailFile(logPath, 40))
		default:
		}
		// GET /v2/ from the lan namespace: 200 once the registry serves.
		if registryAnswers(l.LANNS) {
			return RegistryAddr
		}
		if time.Now().After(deadline) {
			t.Fatalf("lab: registry not answering on %s after 20s; log:\n%s", RegistryAddr, tailFile(logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func registryAnswers(nsName string) bool {
	c, err := linktest.DialIn(nsName, "tcp", RegistryAddr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := fmt.Fprintf(c, "GET /v2/ HTTP/1.0\r\nHost: %s\r\n\r\n", RegistryAddr); err != nil {
		return false
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (l *Lab) stopRegistry() {
	l.regMu.Lock()
	defer l.regMu.Unlock()
	r := l.registry
	if r == nil {
		return
	}
	_ = r.proc.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(5 * time.Second):
		_ = r.proc.Signal(syscall.SIGKILL)
		<-r.done
	}
}
