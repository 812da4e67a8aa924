//go:build e2e

package e2e

// What the engine does with the plugin as packaged, beyond what the
// life-cycle bench (lifecycle_test.go) covers:
//
//	go test -tags e2e -count=1 -v -run TestPackaging ./test/e2e/    # or make test-e2e-push
//
// Already asserted by TestLifecyclePackaging and not repeated here: a
// daemonless push (make push-registry) installs with the prompt answered,
// comes up enabled with CAP_NET_ADMIN and CAP_NET_RAW only and serves networks; `make
// create` creates the plugin disabled; `make install` (scripts/install.sh,
// which runs `docker plugin rm -f`) leaves no directory of the old copy.
// TestLifecyclePlugin asserts the capabilities, the propagated mount and
// the state file of a plugin created from the directory.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// TestPackaging runs on one node: the plugin directory under test pushed by
// the daemonless command (from the node's namespace, to the lab registry)
// and installed with --grant-all-permissions, the same layer installed
// again under an alias, `docker plugin rm` deleting the state directory, and
// `docker plugin create` of one directory under two names.
func TestPackaging(t *testing.T) {
	t.Parallel()
	pluginDir := lab.PluginDir(t)
	l := lab.New(t, lab.Options{Nodes: 1})
	n := l.Node(1)
	reg := l.StartRegistry(t)

	t.Run("daemonless push installed", func(t *testing.T) {
		build := t.TempDir()
		lcMake(t, l, "", "push-tool", "BUILD_DIR="+build)
		ref := reg + "/macvlan-swarm:e2e"
		// The push's own credentials lookup reads the lab's CLI config,
		// never ~/.docker.
		digest := n.Exec(t, "env", "DOCKER_CONFIG="+filepath.Join(l.Dir, "cli"),
			filepath.Join(build, "macvlan-swarm-push"), "-insecure", "-dir", pluginDir, ref)
		t.Logf("daemonless push of %s: %s", pluginDir, digest)

		// What a user types on a node; the engine enables the plugin at
		// once, so the daemon in the rootfs must come up and serve.
		n.Docker(t, "plugin", "install", "--grant-all-permissions", ref, n.EngineRunSetting())
		info := strings.Fields(n.Docker(t, "plugin", "inspect", "-f",
			"{{.Id}} {{.Enabled}} {{.PluginReference}} {{.Config.Interface.Socket}} {{.Config.PropagatedMount}}", ref))
		if len(info) != 5 {
			t.Fatalf("plugin inspect: %q", info)
		}
		id := info[0]
		if got, want := strings.Join(info[1:], " "), "true "+ref+" macvlan-swarm.sock /state"; got != want {
			t.Errorf("enabled, reference, socket, propagated mount = %s; want %s", got, want)
		}
		// The propagated mount lives under the engine's data root, per
		// plugin id; the daemon keeps its state file there.
		stateFile := lcStatePath(t, n, id)
		stateDir := filepath.Dir(stateFile)
		if st, err := os.Stat(stateDir); err != nil || !st.IsDir() {
			t.Fatalf("propagated mount %s: %v", stateDir, err)
		}
		lab.Eventually(t, 15*time.Second, 100*time.Millisecond, "the daemon's state file", func() error {
			_, err := os.Stat(stateFile)
			return err
		})
		t.Logf("installed plugin %s, state in %s", id[:12], stateDir)

		// The same layer under a second name: install, unlike create,
		// takes a layer the engine already holds.
		alias := "macvlan-swarm-copy:e2e"
		t.Run("second install under an alias", func(t *testing.T) {
			n.Docker(t, "plugin", "install", "--grant-all-permissions", "--disable", "--alias", alias, ref)
			got := strings.Fields(n.Docker(t, "plugin", "inspect", "-f", "{{.Id}} {{.Enabled}}", alias))
			if len(got) != 2 || got[0] == id || got[1] != "false" {
				t.Errorf("alias %s: id, enabled = %q; want a plugin of its own (not %s), disabled", alias, got, id[:12])
			}
		})

		// rm takes the propagated mount, state file and all, and only
		// the removed plugin's.
		t.Run("plugin rm deletes the state directory", func(t *testing.T) {
			n.Docker(t, "plugin", "rm", "-f", ref)
			if _, err := os.Stat(filepath.Dir(stateDir)); err == nil {
				t.Errorf("%s still there after plugin rm", filepath.Dir(stateDir))
			}
			if _, _, err := n.DockerErr("plugin", "inspect", alias); err != nil {
				t.Errorf("alias %s gone with %s: %v", alias, ref, err)
			}
		})
	})

	// The engine side of `make create`: the engine refuses a second plugin
	// whose rootfs layer another one holds, and scripts/plugin-create.sh
	// gets past that.
	t.Run("create twice from one directory", func(t *testing.T) {
		// A copy of our own: the script touches the rootfs.
		dir := lab.VariantPluginDir(t, pluginDir)
		pkCreate(t, l, n, "mvs-a:e2e", dir)
		_, errOut, err := n.DockerErr("plugin", "create", "mvs-b:e2e", dir)
		switch {
		case err == nil:
			t.Fatalf("the engine took the same rootfs under a second name; scripts/plugin-create.sh may be unnecessary now")
		case !strings.Contains(errOut, "already exists"):
			t.Fatalf("second create: %v: %s", err, errOut)
		}
		t.Logf("engine, same rootfs under a second name: %s", errOut)
		if out := pkCreate(t, l, n, "mvs-b:e2e", dir); !strings.Contains(out, "refreshing the timestamps") {
			t.Errorf("scripts/plugin-create.sh did not say it refreshed the timestamps:\n%s", out)
		}
		n.Docker(t, "plugin", "inspect", "mvs-b:e2e")
	})
}

// pkCreate runs scripts/plugin-create.sh against node n, with the lab's CLI
// configuration, and returns its output.
func pkCreate(t *testing.T, l *lab.Lab, n *lab.Node, name, dir string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(lab.RepoRoot(t), "scripts", "plugin-create.sh"), lcDockerArg(n), name, dir)
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+filepath.Join(l.Dir, "cli"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("scripts/plugin-create.sh %s: %v\n%s", name, err, out)
	}
	return string(out)
}
