package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/internal/pluginpush/registrytest"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	// No credentials from the developer's own docker login.
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

func pluginDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	config := `{"entrypoint":["/macvlan-swarm"],"interface":{"types":["docker.networkdriver/1.0"],"socket":"macvlan-swarm.sock"},"network":{"type":"host"}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "rootfs", "macvlan-swarm"), []byte("not really a binary"), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stderr string
	}{
		{"help", []string{"-h"}, 0, "usage: macvlan-swarm-push"},
		{"no reference", nil, 2, "missing REFERENCE"},
		{"flag after reference", []string{"127.0.0.1:5000/x:1", "-insecure"}, 2, "flags go before the reference"},
		{"unknown flag", []string{"-nope", "127.0.0.1:5000/x:1"}, 2, "flag provided but not defined"},
		{"bad reference", []string{"Bad Ref"}, 2, "invalid plugin reference"},
		{"no plugin dir", []string{"-dir", "/nonexistent/build/plugin", "127.0.0.1:5000/x:1"}, 1, "run `make plugin` first"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.stderr) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.stderr)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
}

func TestPushPrintsDigest(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	dir := pluginDir(t)
	ref := reg.Host + "/macvlan-swarm:cli"

	code, stdout, stderr := runCLI(t, "-dir", dir, ref)
	if code != 1 || !strings.Contains(stderr, "run again with -insecure") {
		t.Errorf("without -insecure: exit %d, stderr %q; want exit 1 and a hint about -insecure", code, stderr)
	}
	if stdout != "" {
		t.Errorf("without -insecure: stdout %q, want no digest from a failed push", stdout)
	}

	code, stdout, stderr = runCLI(t, "-dir", dir, "-insecure", ref)
	if code != 0 {
		reg.DumpLog(t)
		t.Fatalf("exit %d: %s", code, stderr)
	}
	digest := strings.TrimSpace(stdout)
	if !regexp.MustCompile(`^sha256:[0-9a-f]{64}$`).MatchString(digest) {
		t.Fatalf("stdout %q, want the manifest digest alone", stdout)
	}
	if !strings.Contains(stderr, "docker plugin install --grant-all-permissions "+ref) {
		t.Errorf("stderr %q does not say how to install", stderr)
	}
	req, _ := http.NewRequest(http.MethodHead, "http://"+reg.Host+"/v2/macvlan-swarm/manifests/cli", nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Docker-Content-Digest"); got != digest {
		t.Errorf("registry has %s for the tag, the command printed %s", got, digest)
	}
}
