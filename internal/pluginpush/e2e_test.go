//go:build e2e

package pluginpush

// End-to-end proof that a real engine installs what the daemonless push
// uploads. Needs root, docker.io 20.10 (dockerd and its CLI), docker-registry
// and nsenter; run it through `make test-e2e-push`, which builds the plugin
// first, or set MVS_PLUGIN_DIR to a plugin directory.
//
// The engine and the registry share a network namespace of their own, so the
// engine reaches the registry on 127.0.0.1 (insecure by default for the
// engine: no --insecure-registry) and nothing touches the host's network.

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/pluginpush/registrytest"
)

// e2eLab is one dockerd in its own network namespace and directories.
type e2eLab struct {
	t       *testing.T
	dir     string // everything the test writes: data root, exec root, socket, logs
	netns   string // /run/netns/NAME
	cli     string // docker CLI matching the engine
	sock    string
	dataDir string
}

// e2ePrerequisites skips t unless it can run an engine, and returns the
// docker CLI to use and the plugin directory to test.
func e2ePrerequisites(t *testing.T) (cli, pluginDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: starts dockerd in a network namespace of its own")
	}
	cli = os.Getenv("MVS_DOCKER_CLI")
	if cli == "" {
		cli = "/usr/bin/docker" // Debian's 20.10 CLI, matching its dockerd
	}
	for _, bin := range []string{"/usr/sbin/dockerd", cli, "nsenter", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not found (apt-get install docker.io util-linux iproute2): %v", bin, err)
		}
	}
	pluginDir = os.Getenv("MVS_PLUGIN_DIR")
	if pluginDir == "" {
		pluginDir = "../../build/plugin"
	}
	pluginDir, _ = filepath.Abs(pluginDir)
	if _, err := os.Stat(filepath.Join(pluginDir, "config.json")); err != nil {
		t.Fatalf("no plugin in %s: run `make plugin` first (or `make test-e2e-push`): %v", pluginDir, err)
	}
	return cli, pluginDir
}

func TestE2EInstallDaemonlessPush(t *testing.T) {
	cli, pluginDir := e2ePrerequisites(t)
	lab := newLab(t, cli)
	reg := registrytest.Start(t, registrytest.Options{Netns: lab.netns, Port: 5000})
	lab.startDockerd()

	ref := reg.Host + "/macvlan-swarm:e2e"
	pushBin := buildPushCommand(t, lab.dir)
	push := exec.Command("nsenter", "--net="+lab.netns, pushBin, "-insecure", "-dir", pluginDir, ref)
	push.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(lab.dir, "docker-config"))
	var stderr strings.Builder
	push.Stderr = &stderr
	out, err := push.Output()
	if err != nil {
		reg.DumpLog(t)
		t.Fatalf("macvlan-swarm-push: %v\n%s", err, stderr.String())
	}
	digest := strings.TrimSpace(string(out))
	t.Logf("daemonless push: %s\n%s", digest, stderr.String())

	// What a user types on a node; the engine enables the plugin at once, so
	// the daemon in the rootfs must come up and serve its socket.
	lab.mustDocker("plugin", "install", "--grant-all-permissions", ref)
	t.Cleanup(func() { lab.docker("plugin", "rm", "-f", ref) })

	info := strings.Fields(lab.mustDocker("plugin", "inspect", "-f",
		"{{.Id}} {{.Enabled}} {{.PluginReference}} {{.Config.Interface.Socket}} {{.Config.PropagatedMount}}", ref))
	if len(info) != 5 {
		t.Fatalf("plugin inspect: %q", info)
	}
	id, enabled, pluginRef, socket, propagated := info[0], info[1], info[2], info[3], info[4]
	if enabled != "true" {
		t.Errorf("plugin installed but not enabled")
	}
	if pluginRef != ref || socket != "macvlan-swarm.sock" || propagated != "/state" {
		t.Errorf("plugin reference %q socket %q propagatedMount %q", pluginRef, socket, propagated)
	}
	// The propagated mount lives under the engine's data root, per plugin id.
	stateDir := filepath.Join(lab.dataDir, "plugins", id, "propagated-mount")
	if st, err := os.Stat(stateDir); err != nil || !st.IsDir() {
		t.Errorf("propagated mount %s: %v", stateDir, err)
	}
	rootfs := lab.mustDocker("plugin", "inspect", "-f", "{{json .Config.rootfs}}", ref)
	t.Logf("installed plugin %s, rootfs %s, state in %s", id, strings.TrimSpace(rootfs), stateDir)
	if entries, err := os.ReadDir(stateDir); err == nil {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Logf("the daemon wrote %q there", names)
	}

	// The same layer under a second name: install, unlike create, takes a
	// layer the engine already holds.
	alias := "macvlan-swarm-copy:e2e"
	lab.mustDocker("plugin", "install", "--grant-all-permissions", "--disable", "--alias", alias, ref)
	t.Cleanup(func() { lab.docker("plugin", "rm", "-f", alias) })
}

// TestE2ECreateFromDirectory checks the engine side of `make create`: the
// plugin directory as built, the engine's refusal of a layer another plugin
// holds, and scripts/plugin-create.sh getting past it.
func TestE2ECreateFromDirectory(t *testing.T) {
	cli, src := e2ePrerequisites(t)
	lab := newLab(t, cli)
	lab.startDockerd()

	// A copy, timestamps kept: the script touches the rootfs.
	dir := filepath.Join(lab.dir, "plugin")
	run(t, "cp", "-a", src, dir)
	script, _ := filepath.Abs("../../scripts/plugin-create.sh")
	dockerArg := lab.cli + " -H unix://" + lab.sock

	run(t, script, dockerArg, "mvs-a:e2e", dir)
	t.Cleanup(func() { lab.docker("plugin", "rm", "-f", "mvs-a:e2e") })
	out, err := lab.docker("plugin", "create", "mvs-b:e2e", dir)
	if err == nil {
		t.Cleanup(func() { lab.docker("plugin", "rm", "-f", "mvs-b:e2e") })
		t.Errorf("the engine took the same rootfs under a second name; scripts/plugin-create.sh may be unnecessary now")
	} else if !strings.Contains(out, "already exists") {
		t.Errorf("second create: %v", err)
	} else {
		t.Logf("engine, same rootfs under a second name: %s", strings.TrimSpace(out))
		run(t, script, dockerArg, "mvs-b:e2e", dir)
		t.Cleanup(func() { lab.docker("plugin", "rm", "-f", "mvs-b:e2e") })
	}

	lab.mustDocker("plugin", "enable", "mvs-a:e2e")
	id := strings.TrimSpace(lab.mustDocker("plugin", "inspect", "-f", "{{.Id}}", "mvs-a:e2e"))
	stateDir := filepath.Join(lab.dataDir, "plugins", id, "propagated-mount")
	if st, err := os.Stat(stateDir); err != nil || !st.IsDir() {
		t.Errorf("propagated mount %s: %v", stateDir, err)
	}
	// rm takes the propagated mount, state and all.
	lab.mustDocker("plugin", "rm", "-f", "mvs-a:e2e")
	if _, err := os.Stat(filepath.Join(lab.dataDir, "plugins", id)); err == nil {
		t.Errorf("%s still there after plugin rm", filepath.Join(lab.dataDir, "plugins", id))
	}
}

func newLab(t *testing.T, cli string) *e2eLab {
	// A short path: containerd's socket goes under the exec root, and unix
	// socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "mvs-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(dir)
	lab := &e2eLab{t: t, dir: dir, netns: "/run/netns/" + name, cli: cli,
		sock: filepath.Join(dir, "docker.sock"), dataDir: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() { run(t, "ip", "netns", "del", name) })
	run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return lab
}

// startDockerd runs dockerd in the lab's namespace and stops it, by its pid,
// when the test ends.
func (l *e2eLab) startDockerd() {
	t := l.t
	name := filepath.Base(l.dir)
	logPath := filepath.Join(l.dir, "dockerd.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	// nsenter execs dockerd itself: the pid is dockerd's. The containerd
	// namespaces keep this engine apart from any other using a system
	// containerd.
	cmd := exec.Command("nsenter", "--net="+l.netns, "/usr/sbin/dockerd",
		"--data-root", l.dataDir,
		"--exec-root", filepath.Join(l.dir, "exec"),
		"--pidfile", filepath.Join(l.dir, "dockerd.pid"),
		"-H", "unix://"+l.sock,
		"--containerd-namespace", name,
		"--containerd-plugins-namespace", name+"-plugins",
		"--iptables=false", "--bridge=none")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start dockerd: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			t.Logf("dockerd %d still running 30s after SIGTERM: killing it", cmd.Process.Pid)
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("dockerd log:\n%s", b)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := l.docker("version", "--format", "{{.Server.Version}}"); err == nil {
			return
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("dockerd exited (%v):\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("dockerd not answering after 60s:\n%s", b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (l *e2eLab) docker(args ...string) (string, error) {
	cmd := exec.Command(l.cli, append([]string{"-H", "unix://" + l.sock}, args...)...)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(l.dir, "docker-config"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (l *e2eLab) mustDocker(args ...string) string {
	l.t.Helper()
	out, err := l.docker(args...)
	if err != nil {
		l.t.Fatal(err)
	}
	return out
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// buildPushCommand builds cmd/macvlan-swarm-push into dir.
func buildPushCommand(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	bin := filepath.Join(dir, "macvlan-swarm-push")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/macvlan-swarm/macvlan-swarm/cmd/macvlan-swarm-push")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build cmd/macvlan-swarm-push: %v\n%s", err, out)
	}
	return bin
}

// unmountUnder detaches whatever the engine left mounted below dir, deepest
// first, so that the directory can be removed.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("unmount %s: %v", m, err)
		}
	}
}
