// Package registrytest runs a real registry for tests: Debian's
// docker-registry (distribution 2.x) on a loopback port, storage in a
// temporary directory, stopped by its pid when the test ends.
package registrytest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian's docker-registry package installs the registry.
const Binary = "/usr/bin/docker-registry"

// Options choose where the registry runs.
type Options struct {
	// Netns, when set, is a network namespace file (/run/netns/NAME): the
	// registry runs there, through nsenter, and listens on its loopback.
	Netns string
	// Port is the port to listen on; 0 picks a free one.
	Port int
}

// Registry is a running registry.
type Registry struct {
	Host string // 127.0.0.1:PORT
	Dir  string // storage root
	Log  string // registry output
}

// Start runs a registry for the length of t, or skips t, saying why, when
// the registry binary is not installed.
func Start(t testing.TB, opts Options) *Registry {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("%s not installed (apt-get install docker-registry): %v", Binary, err)
	}
	port := opts.Port
	if port == 0 {
		port = freePort(t)
	}
	dir := t.TempDir()
	r := &Registry{
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Dir:  filepath.Join(dir, "storage"),
		Log:  filepath.Join(dir, "registry.log"),
	}
	cfg := filepath.Join(dir, "config.yml")
	if err := WriteConfig(cfg, r.Host, r.Dir); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()

	argv := []string{Binary, "serve", cfg}
	if opts.Netns != "" {
		// nsenter execs the registry itself, so the pid is the registry's.
		argv = append([]string{"nsenter", "--net=" + opts.Netns}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})

	// Ready once its socket listens. /proc/PID/net/tcp shows the sockets of
	// the process's own network namespace, so this works inside Netns too.
	deadline := time.Now().Add(15 * time.Second)
	for !listening(cmd.Process.Pid, port) {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("registry exited before listening (%v):\n%s", err, readFile(r.Log))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("registry not listening on %s after 15s:\n%s", r.Host, readFile(r.Log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

// WriteConfig writes a registry configuration file to path: listen on addr
// (HOST:PORT), plain HTTP, store under storageDir, deletes allowed. It has
// no auth section: the Debian package's default config asks for htpasswd.
func WriteConfig(path, addr, storageDir string) error {
	yml := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
`, storageDir, addr)
	return os.WriteFile(path, []byte(yml), 0o644)
}

// DumpLog writes the registry output to t's log, for a failing test.
func (r *Registry) DumpLog(t testing.TB) {
	t.Helper()
	t.Logf("registry log %s:\n%s", r.Log, readFile(r.Log))
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// listening reports whether the network namespace of pid has a TCP socket
// listening on 127.0.0.1:port.
func listening(pid, port int) bool {
	f, err := os.Open(fmt.Sprintf("/proc/%d/net/tcp", pid))
	if err != nil {
		return false
	}
	defer f.Close()
	// The address is the raw 32-bit word in hex: byte order is the host's.
	le, be := fmt.Sprintf("0100007F:%04X", port), fmt.Sprintf("7F000001:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st ...; st 0A is LISTEN.
		fields := strings.Fields(sc.Text())
		if len(fields) > 3 && (fields[1] == le || fields[1] == be) && fields[3] == "0A" {
			return true
		}
	}
	return false
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
