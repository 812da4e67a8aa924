//go:build e2e

package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/swarm"
	"github.com/docker/docker/client"
)

// Timeouts. Tests never assert on them; they only bound a hung engine.
const (
	readyTimeout   = 60 * time.Second
	stopTimeout    = 60 * time.Second
	commandTimeout = 3 * time.Minute
)

// Sleeper is a container command that runs until stopped and exits at once
// on SIGTERM (a plain `sleep` as PID 1 ignores SIGTERM, so stopping it, or
// stopping its engine, waits the full 10 s stop timeout).
var Sleeper = []string{"sh", "-c", "trap 'exit 0' TERM; sleep 2147483647 & wait"}

// Node is one engine of the lab, in its own network namespace.
type Node struct {
	Index   int    // 1-based
	Name    string // "node<K>": hostname, swarm node name
	Host    string // "unix:///tmp/mvs-lab-<id>/node<K>/docker.sock"
	Addr    string // the node's address on the lab LAN, 10.99.0.(10+K)
	LANLink string // the node's LAN link, its macvlan parent (eth0 unless Options.LANNames)
	NetNS   string // namespace name under /run/netns
	Dir     string // /tmp/mvs-lab-<id>/node<K>

	lab    *Lab
	cli    *client.Client
	engine Engine // guarded by mu

	mu     sync.Mutex
	proc   *os.Process
	done   chan struct{} // closed when proc has exited and was reaped
	starts int
}

// NetNSPath is the namespace's bind mount, for nsenter --net.
func (n *Node) NetNSPath() string { return filepath.Join("/run/netns", n.NetNS) }

// LogPath is the dockerd log (plugin output included); restarts append.
func (n *Node) LogPath() string { return filepath.Join(n.Dir, "dockerd.log") }

func (n *Node) pidFile() string  { return filepath.Join(n.Dir, "docker.pid") }
func (n *Node) dataRoot() string { return filepath.Join(n.Dir, "data") }
func (n *Node) execRoot() string { return filepath.Join(n.Dir, "exec") }

// DataRoot is the engine's --data-root (plugins' propagated mounts live
// under <data-root>/plugins/<id>/propagated-mount).
func (n *Node) DataRoot() string { return n.dataRoot() }

// ExecRoot is the engine's --exec-root (sandbox files, and plugin sockets on
// newer engines).
func (n *Node) ExecRoot() string { return n.execRoot() }

// Client returns a Docker API client for this node. It negotiates the API
// version, so it works against the 20.10 engine, and keeps working across
// restarts (same socket).
func (n *Node) Client() *client.Client { return n.cli }

// dockerdArgs are the flags every engine gets:
//
//   - --config-file: an empty file of the node's own, so that a
//     /etc/docker/daemon.json on the machine does not change the lab;
//   - --data-root, --exec-root, --pidfile, -H: the node's own directories
//     and socket; the exec root also holds the containerd that dockerd
//     starts itself (no --containerd), its socket and its task state;
//   - --insecure-registry: the lab registry speaks plain HTTP on the LAN.
//
// iptables and the docker0 bridge keep their defaults: both live inside the
// node's namespace, so engines do not meet there.
func (n *Node) dockerdArgs() []string {
	args := []string{
		"--config-file", filepath.Join(n.Dir, "daemon.json"),
		"--data-root", n.dataRoot(),
		"--exec-root", n.execRoot(),
		"--pidfile", n.pidFile(),
		"-H", n.Host,
		"--insecure-registry", LANSubnet,
	}
	if os.Getenv("MVS_LAB_DEBUG") != "" {
		args = append(args, "--debug")
	}
	return append(args, n.lab.opts.DockerdArgs...)
}

// Engine is the engine the node runs (or will run at its next Start).
func (n *Node) Engine() Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.engine
}

// SetEngine makes the node's next Start run engine e, on the same data
// root, exec root and socket: an in-place upgrade (or downgrade) of the
// node's engine. The node must be stopped.
func (n *Node) SetEngine(t testing.TB, e Engine) {
	t.Helper()
	requireEngine(t, e)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running() {
		t.Fatalf("lab: SetEngine(%s) on %s: dockerd is running (pid %d); stop it first", e.Name, n.Name, n.proc.Pid)
	}
	n.engine = e
}

// Start starts the node's engine and waits until it answers.
func (n *Node) Start(t testing.TB) {
	t.Helper()
	if err := n.start(); err != nil {
		t.Fatalf("lab: %v", err)
	}
}

// Running reports whether the node's dockerd is running.
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.running()
}

func (n *Node) running() bool {
	if n.done == nil {
		return false
	}
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// start launches dockerd inside the node's namespace, under a UTS namespace
// of its own whose hostname is the node's name: dockerd 20.10 has no flag
// for the node name and swarm takes it from the hostname. nsenter and
// unshare exec (no fork), and so does sh, so the pid started is dockerd's.
func (n *Node) start() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.running() {
		return fmt.Errorf("%s: dockerd already running (pid %d)", n.Name, n.proc.Pid)
	}
	logf, err := os.OpenFile(n.LogPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	n.clearStaleContainerdPid()
	n.starts++
	fmt.Fprintf(logf, "----- lab: start #%d of dockerd on %s at %s -----\n", n.starts, n.Name, time.Now().Format(time.RFC3339Nano))

	args := append([]string{
		"--net=" + n.NetNSPath(), "--",
		"unshare", "--uts", "--",
		"/bin/sh", "-c", `hostname "$0" && exec "$@"`, n.Name,
		n.engine.Dockerd,
	}, n.dockerdArgs()...)
	fmt.Fprintf(logf, "----- lab: engine %s: %s -----\n", n.engine, n.engine.Dockerd)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = n.Dir
	cmd.Env = n.engine.env()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start dockerd: %w", n.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	n.proc, n.done = cmd.Process, done

	began := time.Now()
	deadline := began.Add(readyTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("%s: dockerd exited during start-up (%s); log tail:\n%s",
				n.Name, cmd.ProcessState, tailFile(n.LogPath(), 40))
		default:
		}
		if n.ping() == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: dockerd not answering on %s after %v; log tail:\n%s",
				n.Name, n.Host, readyTimeout, tailFile(n.LogPath(), 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ping asks the engine for /_ping with a short timeout.
func (n *Node) ping() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := n.cli.Ping(ctx)
	return err
}

// Stop sends SIGTERM to dockerd and waits for it to exit (it stops its
// containers, plugins and containerd first). A dockerd still running after
// a minute fails the test and is killed.
func (n *Node) Stop(t testing.TB) {
	t.Helper()
	if err := n.stop(); err != nil {
		t.Errorf("lab: %v", err)
	}
}

func (n *Node) stop() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running() {
		return nil
	}
	_ = n.proc.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		return nil
	case <-time.After(stopTimeout):
	}
	n.killLocked()
	return fmt.Errorf("%s: dockerd (pid %d) still running %v after SIGTERM, killed; log tail:\n%s",
		n.Name, n.proc.Pid, stopTimeout, tailFile(n.LogPath(), 40))
}

// Kill SIGKILLs dockerd and the containerd it started, as a crash would.
// Containers, their shims and plugin processes keep running, as they do
// after a real crash; a later Start lets the engine find them again, and
// the lab's teardown removes them if the test does not restart the node.
func (n *Node) Kill(t testing.TB) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.running() {
		t.Fatalf("lab: Kill %s: dockerd is not running", n.Name)
	}
	n.killLocked()
}

func (n *Node) killLocked() {
	ctrd := n.containerdPid()
	_ = n.proc.Signal(syscall.SIGKILL)
	if ctrd > 0 {
		// dockerd gives containerd a parent-death signal too; this is for
		// the case where it did not.
		_ = syscall.Kill(ctrd, syscall.SIGKILL)
	}
	<-n.done
	if ctrd > 0 {
		for i := 0; i < 100 && pidAlive(ctrd); i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// containerdPid reads the pid of the containerd this node's dockerd
// started, checking that the process is still that containerd.
func (n *Node) containerdPid() int {
	b, err := os.ReadFile(filepath.Join(n.execRoot(), "containerd", "containerd.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(n.execRoot()+"/")) {
		return 0
	}
	return pid
}

// clearStaleContainerdPid removes the containerd pidfile a killed engine
// left. dockerd 20.10 takes any pid that answers kill(pid, 0) as a running
// containerd, a zombie included (after Kill, containerd is a zombie until
// init reaps it), and then gives up waiting for its socket: "failed to
// start containerd: timeout waiting for containerd to start".
func (n *Node) clearStaleContainerdPid() {
	path := filepath.Join(n.execRoot(), "containerd", "containerd.pid")
	if _, err := os.Stat(path); err != nil {
		return
	}
	if pid := n.containerdPid(); pid > 0 && pidAlive(pid) {
		return
	}
	_ = os.Remove(path)
}

func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i >= 0 && i+2 < len(b) && b[i+2] != 'Z'
}

// Restart stops dockerd and starts it again with the same directories.
func (n *Node) Restart(t testing.TB) {
	t.Helper()
	if err := n.stop(); err != nil {
		t.Fatalf("lab: %v", err)
	}
	n.Start(t)
}

// clearOut removes services (on a manager) and containers with force, so
// that stopping the engine does not spend 10 s on each container. It
// reports whether the node is a swarm manager. Best effort: the lab's
// teardown stops the engine and sweeps after it whatever happens here.
func (n *Node) clearOut() (manager bool) {
	if !n.Running() {
		return false
	}
	cli := n.Client()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if info, err := cli.Info(ctx); err == nil && info.Swarm.ControlAvailable {
		manager = true
		if svcs, err := cli.ServiceList(ctx, swarm.ServiceListOptions{}); err == nil {
			for _, s := range svcs {
				_ = cli.ServiceRemove(ctx, s.ID)
			}
		}
	}
	if cs, err := cli.ContainerList(ctx, container.ListOptions{All: true}); err == nil {
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_ = cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}()
		}
		wg.Wait()
	}
	return manager
}

// cleanEnv is the test's environment without variables that would point
// docker at another engine or config.
// CleanEnv is the test's environment without the variables that point a
// Docker client elsewhere; a command for a node adds its DOCKER_HOST.
func CleanEnv() []string { return cleanEnv() }

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG", "DOCKER_API_VERSION":
			continue
		}
		env = append(env, kv)
	}
	return env
}

// dockerCmd builds a docker CLI command for this node, with a CLI config
// directory of the lab's own (nothing is read from or written to ~/.docker).
func (n *Node) dockerCmd(ctx context.Context, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, n.Engine().CLI, append([]string{"-H", n.Host}, args...)...)
	cmd.Env = append(cleanEnv(), "DOCKER_CONFIG="+filepath.Join(n.lab.Dir, "cli"))
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd
}

// DockerErr runs the node's engine's CLI (Engine.CLI) -H <node> args… and
// returns its output, for commands that are expected to fail. stdout is
// trimmed of surrounding white space.
func (n *Node) DockerErr(args ...string) (stdout, stderr string, err error) {
	return n.DockerStdinErr("", args...)
}

// DockerStdinErr is DockerErr with input (e.g. "y\n" for `plugin upgrade`).
func (n *Node) DockerStdinErr(stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var o, e bytes.Buffer
	cmd := n.dockerCmd(ctx, stdin, args...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("timed out after %v: %w", commandTimeout, err)
	}
	return strings.TrimSpace(o.String()), strings.TrimSpace(e.String()), err
}

// Docker runs the node's CLI -H <node> args… and returns its stdout
// (trimmed); a failure fails the test with stderr.
func (n *Node) Docker(t testing.TB, args ...string) string {
	t.Helper()
	return n.DockerStdin(t, "", args...)
}

// DockerStdin is Docker with input.
func (n *Node) DockerStdin(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := n.DockerStdinErr(stdin, args...)
	if err != nil {
		t.Fatalf("%s: docker %s: %v\nstderr: %s\nstdout: %s", n.Name, strings.Join(args, " "), err, errOut, out)
	}
	return out
}

// ExecErr runs a command inside the node's network namespace. Only the
// network namespace: files and processes are the machine's, and /sys (not
// remounted) still shows the root namespace's links under /sys/class/net;
// use ip(8) or netlink to look at the node's links.
func (n *Node) ExecErr(cmd ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	var o, e bytes.Buffer
	c := exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + n.NetNSPath(), "--"}, cmd...)...)
	c.Stdout, c.Stderr = &o, &e
	err = c.Run()
	return strings.TrimSpace(o.String()), strings.TrimSpace(e.String()), err
}

// Exec is ExecErr that fails the test on error and returns stdout.
func (n *Node) Exec(t testing.TB, cmd ...string) string {
	t.Helper()
	out, errOut, err := n.ExecErr(cmd...)
	if err != nil {
		t.Fatalf("%s: %s: %v\nstderr: %s\nstdout: %s", n.Name, strings.Join(cmd, " "), err, errOut, out)
	}
	return out
}

// LinkNames lists the links in the node's network namespace (its "host"
// links: the LAN link, docker0, links a driver left behind, …).
func (n *Node) LinkNames(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("ip", "-j", "-n", n.NetNS, "link", "show").Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("%s: ip link show: %v: %s", n.Name, err, ee.Stderr)
		}
		t.Fatalf("%s: ip link show: %v", n.Name, err)
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal(out, &links); err != nil {
		t.Fatalf("%s: ip -j link show: %v", n.Name, err)
	}
	names := make([]string, 0, len(links))
	for _, l := range links {
		names = append(names, l.Name)
	}
	return names
}

// Log returns the whole dockerd log of this node (all starts).
func (n *Node) Log(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(n.LogPath())
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	return string(b)
}
