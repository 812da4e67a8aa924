//go:build e2e

package lab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// Engine is one Docker engine version the lab can run a node on: its
// dockerd, the CLI that matches it, and what differs between versions that
// the tests must know (docs/engines.md has the observed facts).
//
// 20.10 is the machine's docker.io (scripts/ensure-packages.sh). 26.1 and
// 28.5 are Debian packages unpacked into a cache folder outside the
// repository by scripts/ensure-engines.sh, which EngineNamed runs when the
// folder is missing; their dockerd runs with the engine's folders first on
// PATH, so that 28.5 starts its own containerd 2.1 while 26.1 uses the
// machine's containerd 1.6. Both use the machine's runc.
type Engine struct {
	// Name is the version the matrix shows: "20.10", "26.1" or "28.5".
	Name string
	// Dockerd and CLI are absolute paths.
	Dockerd, CLI string
	// Bin are folders put first on dockerd's PATH (empty for 20.10).
	Bin []string
	// Packages are the Debian packages and versions the engine was
	// unpacked from ("docker.io=28.5.2+dfsg4-5 …"; empty for 20.10).
	Packages string
	// GlobalStandalone: the engine accepts a global-scope plugin network
	// outside swarm mode (engines ≥ 26; 20.10 answers "This node is not a
	// swarm manager"), so plain `docker run` needs no one-node swarm and
	// no --attachable there.
	GlobalStandalone bool
}

// EngineNames lists the engines of the matrix, oldest first.
var EngineNames = []string{"20.10", "26.1", "28.5"}

// engineCache is where scripts/ensure-engines.sh unpacks the newer engines.
func engineCache() string { return envOr("MVS_ENGINE_CACHE", "/var/cache/mvs-engines") }

var fetched struct {
	mu  sync.Mutex
	err map[string]error
}

// EngineNamed returns engine name, fetching it into the cache first if it
// is not there (scripts/ensure-engines.sh, once per process and engine).
// An unknown name or a failed fetch fails t.
func EngineNamed(t testing.TB, name string) Engine {
	t.Helper()
	e, err := engineNamed(name, func() string { return RepoRoot(t) })
	if err != nil {
		t.Fatalf("lab: engine %s: %v", name, err)
	}
	return e
}

func engineNamed(name string, repoRoot func() string) (Engine, error) {
	switch name {
	case "20.10":
		return Engine{
			Name:    "20.10",
			Dockerd: envOr("MVS_DOCKERD", "/usr/sbin/dockerd"),
			CLI:     envOr("MVS_DOCKER_CLI", "/usr/bin/docker"),
		}, nil
	case "26.1", "28.5":
	default:
		return Engine{}, fmt.Errorf("unknown engine %q (the lab knows %s)", name, strings.Join(EngineNames, ", "))
	}
	root := filepath.Join(engineCache(), name, "root")
	marker := filepath.Join(root, ".mvs-engine")
	fetched.mu.Lock()
	if fetched.err == nil {
		fetched.err = map[string]error{}
	}
	err, tried := fetched.err[name]
	if _, statErr := os.Stat(marker); statErr != nil && !tried {
		script := filepath.Join(repoRoot(), "scripts", "ensure-engines.sh")
		out, runErr := exec.Command(script, name).CombinedOutput()
		if runErr != nil {
			err = fmt.Errorf("%s %s: %w\n%s", script, name, runErr, out)
		}
		fetched.err[name] = err
	}
	fetched.mu.Unlock()
	if err != nil {
		return Engine{}, err
	}
	b, err := os.ReadFile(marker)
	if err != nil {
		return Engine{}, fmt.Errorf("not in the cache (%w); run scripts/ensure-engines.sh %s", err, name)
	}
	e := Engine{
		Name:             name,
		Dockerd:          filepath.Join(root, "usr", "sbin", "dockerd"),
		CLI:              filepath.Join(root, "usr", "bin", "docker"),
		Bin:              []string{filepath.Join(root, "usr", "sbin"), filepath.Join(root, "usr", "bin")},
		GlobalStandalone: true,
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "packages="); ok {
			e.Packages = v
		}
	}
	return e, nil
}

// CurrentName is the engine the tests of this process run on: MVS_ENGINE,
// or 20.10 when it is not set.
func CurrentName() string { return envOr("MVS_ENGINE", "20.10") }

// CurrentEngine is the engine named by MVS_ENGINE (20.10 when unset): every
// node of a lab runs it unless Options.Engines says otherwise.
func CurrentEngine(t testing.TB) Engine {
	t.Helper()
	return EngineNamed(t, CurrentName())
}

// OnEngines skips the test unless this process runs on one of the engines
// named: for suites the matrix runs on some engines only, and for tests
// that pick their nodes' engines themselves and must run in one stream.
func OnEngines(t testing.TB, names ...string) {
	t.Helper()
	if !slices.Contains(names, CurrentName()) {
		t.Skipf("lab: runs on engine %s only; this run's engine is %s (MVS_ENGINE)",
			strings.Join(names, " and "), CurrentName())
	}
}

// String is the engine's name and, for a fetched one, its packages.
func (e Engine) String() string {
	if e.Packages == "" {
		return e.Name
	}
	return e.Name + " (" + e.Packages + ")"
}

// env is the environment dockerd runs with: cleanEnv with the engine's
// folders first on PATH.
func (e Engine) env() []string {
	env := cleanEnv()
	if len(e.Bin) == 0 {
		return env
	}
	path := strings.Join(e.Bin, ":")
	found := false
	for i, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			env[i] = "PATH=" + path + ":" + v
			found = true
		}
	}
	if !found {
		env = append(env, "PATH="+path+":/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return env
}
