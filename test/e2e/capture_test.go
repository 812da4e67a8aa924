//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// TestCaptureRequests records what an engine sends a network plugin, into
// internal/protocol/wiretest (see its README for the scenario). It is a
// tool, not a check: it runs only with MVS_CAPTURE=<engine label> (e.g.
// 28.5), against the engine the lab runs (MVS_ENGINE=28.5), and writes
// engine-<label>-standalone and engine-<label>-swarm there. The plugin is
// the real driver behind test/lab/recorder, which writes each request body
// as it came.
func TestCaptureRequests(t *testing.T) {
	label := os.Getenv("MVS_CAPTURE")
	if label == "" {
		t.Skip("a capture tool: set MVS_CAPTURE=<engine label> and MVS_ENGINE=<that engine> to record")
	}
	root := lab.RepoRoot(t)
	dir := filepath.Join(t.TempDir(), "plugin")
	pluginDir := lab.PluginDir(t)
	if out, err := exec.Command("cp", "-a", pluginDir, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy plugin: %v\n%s", err, out)
	}
	build := exec.Command("go", "build", "-trimpath", "-o", filepath.Join(dir, "rootfs", "macvlan-swarm"), "./test/lab/recorder")
	build.Dir, build.Env = root, append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build recorder: %v\n%s", err, out)
	}
	for _, swarm := range []bool{false, true} {
		kind := "standalone"
		if swarm {
			kind = "swarm"
		}
		t.Run(kind, func(t *testing.T) {
			l := lab.New(t, lab.Options{Nodes: 1})
			n := l.Node(1)
			img := lab.BusyboxImage(t, n)
			n.InstallPluginFromDir(t, pluginRef, dir)
			var attach []string
			if swarm {
				lab.SingleNodeSwarm(t, n)
				lab.WaitPluginListed(t, n, pluginRef, n)
				attach = []string{"--attachable"}
			}
			net := func(args ...string) {
				n.Docker(t, append(append([]string{"network", "create", "-d", pluginRef}, attach...), args...)...)
			}
			p := "parent=" + n.LANLink
			net("--subnet", "10.61.0.0/24", "--gateway", "10.61.0.1", "-o", p, "-o", "com.docker.network.driver.mtu=1400", "recnet")
			net("--ipv6", "--subnet", "10.62.0.0/24", "--subnet", "fd00:62::/64", "-o", p, "recv6")
			net("--internal", "--subnet", "10.63.0.0/24", "-o", p, "recint")
			// Engine 28.5 refuses IPv6-only swarm networks ("IPv4 cannot be
			// disabled in a Swarm scoped network"): standalone only.
			if !swarm {
				net("--ipv4=false", "--ipv6", "--subnet", "fd00:64::/64", "-o", p, "rec6only")
			}
			run := func(name string, args ...string) {
				n.Docker(t, append(append([]string{"run", "-d", "--name", name}, args...), append([]string{img}, lab.Sleeper...)...)...)
			}
			run("r1", "--network", "recnet")
			run("r2", "--network", "recnet", "--ip", "10.61.0.50", "--mac-address", "02:aa:bb:cc:dd:01")
			// Engine 28.5's swarm allocator fails on this dual-stack
			// network ("cannot find address pool for poolID:fd00:62::/64/
			// invalid Prefix", in the manager's log, before the plugin is
			// asked): its containers time out. docs/engines.md.
			if !swarm {
				run("r3", "--network", "recv6")
			}
			run("r4", "--network", "recint")
			if !swarm {
				run("r5", "--network", "rec6only")
			}
			run("r6", "--network", "name=recnet,driver-opt=com.docker.network.endpoint.ifname=lan0")
			if !swarm {
				n.Docker(t, "network", "connect", "recv6", "r1")
				n.Docker(t, "network", "disconnect", "recv6", "r1")
			}
			if swarm {
				n.Docker(t, append([]string{"service", "create", "--detach", "--name", "recsvc", "--replicas", "2", "--endpoint-mode", "dnsrr", "--network", "recnet", img}, lab.Sleeper...)...)
				lab.Eventually(t, 60e9, 5e8, "2 tasks running", func() error {
					out := n.Docker(t, "service", "ps", "--filter", "desired-state=running", "--format", "{{.CurrentState}}", "recsvc")
					if strings.Count(out, "Running") < 2 {
						return fmt.Errorf("tasks: %s", out)
					}
					return nil
				})
				n.Docker(t, "service", "rm", "recsvc")
			}
			ctrs, nets := []string{"r1", "r2", "r4", "r6"}, []string{"recnet", "recv6", "recint"}
			if !swarm {
				ctrs, nets = append(ctrs, "r3", "r5"), append(nets, "rec6only")
			}
			n.Docker(t, append([]string{"rm", "-f"}, ctrs...)...)
			lab.Eventually(t, 60e9, 5e8, "networks removed", func() error {
				_, _, err := n.DockerErr(append([]string{"network", "rm"}, nets...)...)
				return err
			})
			id := n.Docker(t, "plugin", "inspect", "-f", "{{.Id}}", pluginRef)
			src := filepath.Join(n.DataRoot(), "plugins", id, "propagated-mount", "recorded")
			// A swarm node drops its copies of the networks a moment after
			// `network rm` returns: wait for every DeleteNetwork.
			lab.Eventually(t, 60e9, 2e8, "a DeleteNetwork for every CreateNetwork", func() error {
				created, _ := filepath.Glob(filepath.Join(src, "*-CreateNetwork.json"))
				deleted, _ := filepath.Glob(filepath.Join(src, "*-DeleteNetwork.json"))
				if len(deleted) < len(created) {
					return fmt.Errorf("%d of %d deleted", len(deleted), len(created))
				}
				return nil
			})
			n.Docker(t, "plugin", "disable", "-f", pluginRef)
			dst := filepath.Join(root, "internal", "protocol", "wiretest", "engine-"+label+"-"+kind)
			if err := os.RemoveAll(dst); err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			files, _ := filepath.Glob(filepath.Join(src, "*.json"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				// Sandbox paths as on an engine with the default exec root.
				b = []byte(strings.ReplaceAll(string(b), n.ExecRoot(), "/var/run/docker"))
				if err := os.WriteFile(filepath.Join(dst, filepath.Base(f)), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			t.Logf("%d requests recorded into %s", len(files), dst)
		})
	}
}
