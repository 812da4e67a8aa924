//go:build e2e

package lab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// modulePath identifies the repository's go.mod.
const modulePath = "github.com/macvlan-swarm/macvlan-swarm"

// RepoRoot returns the repository root: the nearest folder above the
// working directory whose go.mod declares this module.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatalf("lab: %v", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module "+modulePath+"\n")) {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatalf("lab: no go.mod of %s above the working directory", modulePath)
		}
		dir = parent
	}
}

var pluginBuild struct {
	once sync.Once
	dir  string
	skip string
	err  error
}

// PluginDir returns a managed-plugin directory (config.json and rootfs/)
// of the driver: $MVS_PLUGIN_DIR when set, otherwise <repo>/build/plugin
// after `make -C <repo> plugin`, run once per test process. It skips the
// test while the daemon's source (cmd/macvlan-swarm) does not exist yet and
// fails it when the build fails.
func PluginDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("MVS_PLUGIN_DIR"); dir != "" {
		checkPluginDir(t, dir)
		return dir
	}
	root := RepoRoot(t)
	pluginBuild.once.Do(func() {
		srcs, _ := filepath.Glob(filepath.Join(root, "cmd", "macvlan-swarm", "*.go"))
		if len(srcs) == 0 {
			pluginBuild.skip = "cmd/macvlan-swarm has no Go source yet: no plugin to test"
			return
		}
		cmd := exec.Command("make", "-C", root, "plugin")
		out, err := cmd.CombinedOutput()
		if err != nil {
			pluginBuild.err = fmt.Errorf("make plugin: %w\n%s", err, out)
			return
		}
		pluginBuild.dir = filepath.Join(root, "build", "plugin")
	})
	if pluginBuild.skip != "" {
		t.Skip("lab: " + pluginBuild.skip)
	}
	if pluginBuild.err != nil {
		t.Fatalf("lab: %v", pluginBuild.err)
	}
	checkPluginDir(t, pluginBuild.dir)
	return pluginBuild.dir
}

func checkPluginDir(t testing.TB, dir string) {
	t.Helper()
	for _, p := range []string{"config.json", "rootfs"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Fatalf("lab: plugin directory %s: %v", dir, err)
		}
	}
}

// VariantPluginDir copies a plugin directory into a temporary one and adds
// a marker file to its rootfs, so that its layer differs from the
// original's: `docker plugin create` refuses a rootfs whose layer another
// plugin on the same engine already holds ("content … already exists").
// Use it to install a second plugin (an upgrade target, another name) from
// the same build.
func VariantPluginDir(t testing.TB, dir string) string {
	t.Helper()
	checkPluginDir(t, dir)
	dst := filepath.Join(t.TempDir(), "plugin")
	if out, err := exec.Command("cp", "-a", dir, dst).CombinedOutput(); err != nil {
		t.Fatalf("lab: copy %s: %v: %s", dir, err, out)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	marker := filepath.Join(dst, "rootfs", ".mvs-variant")
	if err := os.WriteFile(marker, []byte(hex.EncodeToString(b[:])+"\n"), 0o644); err != nil {
		t.Fatalf("lab: %v", err)
	}
	return dst
}

// InstallPluginFromDir creates the managed plugin name (e.g.
// "macvlan-swarm:latest") on node n from dir, applies settings
// ("KEY=VALUE", as for `docker plugin set`) and enables it.
func (n *Node) InstallPluginFromDir(t testing.TB, name, dir string, settings ...string) {
	t.Helper()
	checkPluginDir(t, dir)
	n.Docker(t, "plugin", "create", name, dir)
	n.Docker(t, append([]string{"plugin", "set", name, n.EngineRunSetting()}, settings...)...)
	n.Docker(t, "plugin", "enable", name)
}

// EngineRunSetting points the plugin's engine-run mount at this node's exec
// root, where its engine keeps the sandbox files (<exec-root>/netns) the
// plugin watches to reclaim endpoints of dead containers. Without it the
// plugin sees /var/run/docker, not this node's sandboxes, and judges no
// endpoint by its sandbox.
func (n *Node) EngineRunSetting() string { return "engine-run.source=" + n.execRoot() }

// PluginStatus is what the plugin's GET /status answers (the fields the
// tests read; see internal/driver/status.go).
type PluginStatus struct {
	Networks []struct {
		ID        string `json:"id"`
		Parent    string `json:"parent"`
		Endpoints int    `json:"endpoints"`
	} `json:"networks"`
	Endpoints []struct {
		ID      string `json:"id"`
		Network string `json:"network"`
		Link    string `json:"link"`
		IPv4    string `json:"ipv4"`
		Joined  bool   `json:"joined"`
	} `json:"endpoints"`
	IPAM struct {
		Pools []struct {
			ID      string    `json:"id"`
			Space   string    `json:"space"`
			Subnet  string    `json:"subnet"`
			Range   string    `json:"range"`
			InUse   int       `json:"in_use"`
			Created time.Time `json:"created"`
			Network string    `json:"network"`
			Role    string    `json:"role"`
		} `json:"pools"`
	} `json:"ipam"`
}

// Status asks the plugin name on node n for GET /status, failing t if it
// cannot.
func (n *Node) Status(t testing.TB, name string) PluginStatus {
	t.Helper()
	s, err := n.StatusErr(t, name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// StatusErr asks the plugin name on node n for GET /status over its socket,
// which engine 20.10 puts in /run/docker/plugins/<plugin id>/ whatever the
// engine's exec root, and newer engines in <exec root>/plugins/<plugin id>/.
// The node's engine's folder is tried first: a node upgraded in place from
// 20.10 may have left the old one behind.
func (n *Node) StatusErr(t testing.TB, name string) (PluginStatus, error) {
	t.Helper()
	id := n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", name)
	// The socket's path is longer than a unix address may be (108 bytes):
	// dial it through a short symbolic link to its folder.
	short, err := os.MkdirTemp("/tmp", "mvss")
	if err != nil {
		return PluginStatus{}, err
	}
	defer os.RemoveAll(short)
	dirs := []string{filepath.Join(n.execRoot(), "plugins", id), filepath.Join("/run/docker/plugins", id)}
	if n.Engine().Name == "20.10" {
		dirs[0], dirs[1] = dirs[1], dirs[0]
	}
	dir := dirs[0]
	if _, err := os.Stat(filepath.Join(dir, "macvlan-swarm.sock")); err != nil {
		// MVS_DOCKERD may name another engine's dockerd.
		dir = dirs[1]
	}
	if err := os.Symlink(dir, filepath.Join(short, "p")); err != nil {
		return PluginStatus{}, err
	}
	sock := filepath.Join(short, "p", "macvlan-swarm.sock")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	defer c.CloseIdleConnections()
	var s PluginStatus
	resp, err := c.Get("http://plugin/status")
	if err != nil {
		return s, fmt.Errorf("%s: GET /status on %s: %w", n.Name, dir, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("%s: GET /status on %s: %s: %s", n.Name, dir, resp.Status, body)
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("%s: GET /status: %w: %s", n.Name, err, body)
	}
	return s, nil
}
