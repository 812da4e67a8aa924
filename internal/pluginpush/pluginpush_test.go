package pluginpush

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/macvlan-swarm/macvlan-swarm/internal/pluginpush/registrytest"
)

const testConfig = `{
  "description": "test plugin",
  "documentation": "https://example.invalid/docs",
  "entrypoint": ["/macvlan-swarm"],
  "interface": {"types": ["docker.networkdriver/1.0"], "socket": "macvlan-swarm.sock"},
  "network": {"type": "host"},
  "linux": {"capabilities": ["CAP_NET_ADMIN"]},
  "propagatedMount": "/state",
  "env": [{"name": "LOG_LEVEL", "description": "verbosity", "settable": ["value"], "value": "info"}]
}`

// writePluginDir makes a plugin directory shaped like build/plugin.
func writePluginDir(t *testing.T, config string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "rootfs")
	for _, d := range []string{"run/docker/plugins", "state", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "macvlan-swarm"), bytes.Repeat([]byte("binary "), 4096), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("macvlan-swarm", filepath.Join(root, "daemon")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compressed(t *testing.T, p *Plugin) []byte {
	t.Helper()
	rc, err := p.layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestLayerDigestsMatchContent(t *testing.T) {
	p, err := Load(writePluginDir(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	gz := compressed(t, p)
	if got, want := p.LayerDigest().String(), sha(gz); got != want {
		t.Errorf("layer digest %s, sha256 of the blob is %s", got, want)
	}
	if got, want := p.LayerDiffID().String(), sha(gunzip(t, gz)); got != want {
		t.Errorf("diff id %s, sha256 of the uncompressed tar is %s", got, want)
	}
	if p.LayerSize() != int64(len(gz)) {
		t.Errorf("layer size %d, blob has %d bytes", p.LayerSize(), len(gz))
	}
}

func TestLayerTarEntries(t *testing.T) {
	p, err := Load(writePluginDir(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(gunzip(t, compressed(t, p))))
	type entry struct {
		typ  byte
		mode int64
		link string
	}
	got := map[string]entry{}
	var order []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 || h.Uname != "" || h.Gname != "" {
			t.Errorf("%s: owner %d:%d (%q:%q), want 0:0 without names", h.Name, h.Uid, h.Gid, h.Uname, h.Gname)
		}
		if !h.ModTime.Equal(time.Unix(0, 0)) {
			t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
		}
		got[h.Name] = entry{h.Typeflag, h.Mode, h.Linkname}
		order = append(order, h.Name)
	}
	want := map[string]entry{
		"daemon":              {tar.TypeSymlink, 0o777, "macvlan-swarm"},
		"macvlan-swarm":       {tar.TypeReg, 0o755, ""},
		"run/":                {tar.TypeDir, 0o755, ""},
		"run/docker/":         {tar.TypeDir, 0o755, ""},
		"run/docker/plugins/": {tar.TypeDir, 0o755, ""},
		"state/":              {tar.TypeDir, 0o755, ""},
		"tmp/":                {tar.TypeDir, 0o1777, ""},
	}
	for name, w := range want {
		g, ok := got[name]
		if !ok {
			t.Errorf("entry %q missing (have %q)", name, order)
			continue
		}
		if g != w {
			t.Errorf("entry %q: type %c mode %o link %q, want type %c mode %o link %q", name, g.typ, g.mode, g.link, w.typ, w.mode, w.link)
		}
	}
	if len(got) != len(want) {
		t.Errorf("entries %q, want exactly %d", order, len(want))
	}
}

func TestLayerIsReproducible(t *testing.T) {
	a, err := Load(writePluginDir(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	dir := writePluginDir(t, testConfig)
	// Other times on every file: they must not reach the layer.
	later := time.Now().Add(time.Hour)
	_ = filepath.Walk(filepath.Join(dir, "rootfs"), func(path string, _ os.FileInfo, _ error) error {
		return os.Chtimes(path, later, later)
	})
	b, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.LayerDigest() != b.LayerDigest() || a.LayerDiffID() != b.LayerDiffID() {
		t.Errorf("same rootfs, different layers: %s/%s vs %s/%s", a.LayerDigest(), a.LayerDiffID(), b.LayerDigest(), b.LayerDiffID())
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Errorf("same plugin, different manifest digests %s and %s", da, db)
	}
}

func TestConfigBlob(t *testing.T) {
	withStaleRootfs := strings.Replace(testConfig, `"description"`, `"rootfs": {"type": "layers", "diff_ids": ["sha256:stale"]}, "description"`, 1)
	p, err := Load(writePluginDir(t, withStaleRootfs))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := p.RawConfigFile()
	var got map[string]json.RawMessage
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	var rootfs struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}
	if err := json.Unmarshal(got["rootfs"], &rootfs); err != nil {
		t.Fatal(err)
	}
	if rootfs.Type != "layers" || len(rootfs.DiffIDs) != 1 || rootfs.DiffIDs[0] != p.LayerDiffID().String() {
		t.Errorf("rootfs %+v, want type layers and diff_ids [%s]", rootfs, p.LayerDiffID())
	}
	// Every member of config.json is kept, values unchanged.
	var orig map[string]json.RawMessage
	if err := json.Unmarshal([]byte(testConfig), &orig); err != nil {
		t.Fatal(err)
	}
	for k, v := range orig {
		var a, b any
		_ = json.Unmarshal(v, &a)
		_ = json.Unmarshal(got[k], &b)
		if ja, jb := mustJSON(t, a), mustJSON(t, b); ja != jb {
			t.Errorf("member %q: %s, config.json has %s", k, jb, ja)
		}
	}
	if len(got) != len(orig)+1 {
		t.Errorf("config blob has %d members, want config.json's %d plus rootfs", len(got), len(orig))
	}
	cf, err := p.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if len(cf.RootFS.DiffIDs) != 1 || cf.RootFS.DiffIDs[0] != p.LayerDiffID() {
		t.Errorf("ConfigFile().RootFS %+v", cf.RootFS)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestManifestShape(t *testing.T) {
	p, err := Load(writePluginDir(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := p.RawManifest()
	var m struct {
		SchemaVersion int    `json:"schemaVersion"`
		MediaType     string `json:"mediaType"`
		Config        struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Size      int64  `json:"size"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
			Size      int64  `json:"size"`
		} `json:"layers"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	cfg, _ := p.RawConfigFile()
	if m.SchemaVersion != 2 || m.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("manifest schemaVersion %d mediaType %q", m.SchemaVersion, m.MediaType)
	}
	if m.Config.MediaType != "application/vnd.docker.plugin.v1+json" || m.Config.Digest != sha(cfg) || m.Config.Size != int64(len(cfg)) {
		t.Errorf("config descriptor %+v, want plugin media type, %s, %d bytes", m.Config, sha(cfg), len(cfg))
	}
	if len(m.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(m.Layers))
	}
	l := m.Layers[0]
	if l.MediaType != "application/vnd.docker.image.rootfs.diff.tar.gzip" || l.Digest != p.LayerDigest().String() || l.Size != p.LayerSize() {
		t.Errorf("layer descriptor %+v", l)
	}
	d, _ := p.Digest()
	if d.String() != sha(raw) {
		t.Errorf("Digest() %s, sha256 of the manifest is %s", d, sha(raw))
	}
}

func TestLoadErrors(t *testing.T) {
	t.Run("no config.json", func(t *testing.T) {
		dir := writePluginDir(t, testConfig)
		os.Remove(filepath.Join(dir, "config.json"))
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), "config.json not found: run `make plugin` first") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("no rootfs", func(t *testing.T) {
		dir := writePluginDir(t, testConfig)
		os.RemoveAll(filepath.Join(dir, "rootfs"))
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), "rootfs not found: run `make plugin` first") {
			t.Errorf("err %v", err)
		}
	})
	t.Run("fifo in rootfs", func(t *testing.T) {
		dir := writePluginDir(t, testConfig)
		fifo := filepath.Join(dir, "rootfs", "pipe")
		if err := syscall.Mkfifo(fifo, 0o644); err != nil {
			t.Skipf("mkfifo: %v", err)
		}
		_, err := Load(dir)
		if err == nil || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "only directories, regular files and symbolic links") {
			t.Errorf("err %v", err)
		}
	})
	for _, tc := range []struct {
		name, config, want string
	}{
		{"not JSON", `{"entrypoint":`, "not a JSON object"},
		{"array", `[1]`, "not a JSON object"},
		{"null", `null`, "not a JSON object"},
		{"no entrypoint", `{"interface":{"types":["docker.networkdriver/1.0"],"socket":"s.sock"}}`, "entrypoint is empty"},
		{"no types", `{"entrypoint":["/x"],"interface":{"socket":"s.sock"}}`, "interface.types is empty"},
		{"no socket", `{"entrypoint":["/x"],"interface":{"types":["docker.networkdriver/1.0"]}}`, "interface.socket is empty"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(writePluginDir(t, tc.config))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseReference(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"127.0.0.1:5000/macvlan-swarm:0.1.0", "127.0.0.1:5000/macvlan-swarm:0.1.0", true},
		{"registry.example:5000/team/macvlan-swarm", "registry.example:5000/team/macvlan-swarm:latest", true},
		{"127.0.0.1:5000/macvlan-swarm@sha256:" + strings.Repeat("a", 64), "", false},
		{"Not A Reference", "", false},
		{"", "", false},
	} {
		tag, err := ParseReference(tc.in, false)
		if (err == nil) != tc.ok {
			t.Errorf("ParseReference(%q) err %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !strings.Contains(err.Error(), "e.g. 127.0.0.1:5000/macvlan-swarm:0.1.0") {
				t.Errorf("ParseReference(%q) error gives no example: %v", tc.in, err)
			}
			continue
		}
		if tag.Name() != tc.want {
			t.Errorf("ParseReference(%q) = %s, want %s", tc.in, tag.Name(), tc.want)
		}
	}
}

// get fetches a registry URL and checks the status.
func get(t *testing.T, url, accept string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return resp, body
}

// TestPushToRegistry pushes to a real registry and reads everything back
// over the plain registry API, as the engine would.
func TestPushToRegistry(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	p, err := Load(writePluginDir(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := ParseReference(reg.Host+"/macvlan-swarm:test", true)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := Options{Insecure: true, Keychain: authn.NewMultiKeychain()} // no credentials
	res, err := Push(ctx, p, ref, opts)
	if err != nil {
		reg.DumpLog(t)
		t.Fatal(err)
	}

	base := "http://" + reg.Host + "/v2/macvlan-swarm"
	resp, manifest := get(t, base+"/manifests/test", "application/vnd.docker.distribution.manifest.v2+json")
	if ct := resp.Header.Get("Content-Type"); ct != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("manifest Content-Type %q", ct)
	}
	if d := resp.Header.Get("Docker-Content-Digest"); d != res.Digest.String() || d != sha(manifest) {
		t.Errorf("registry digest %s, push reported %s, sha256 of the manifest %s", d, res.Digest, sha(manifest))
	}
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		t.Fatal(err)
	}
	if m.SchemaVersion != 2 || m.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		t.Errorf("manifest schemaVersion %d mediaType %q", m.SchemaVersion, m.MediaType)
	}
	if m.Config.MediaType != "application/vnd.docker.plugin.v1+json" {
		t.Errorf("config media type %q", m.Config.MediaType)
	}
	if len(m.Layers) != 1 || m.Layers[0].MediaType != "application/vnd.docker.image.rootfs.diff.tar.gzip" {
		t.Fatalf("layers %+v, want one gzipped rootfs layer", m.Layers)
	}

	_, config := get(t, base+"/blobs/"+m.Config.Digest.String(), "")
	if sha(config) != m.Config.Digest.String() || int64(len(config)) != m.Config.Size || m.Config.Digest != res.Config {
		t.Errorf("config blob: sha256 %s, %d bytes; manifest says %s, %d bytes", sha(config), len(config), m.Config.Digest, m.Config.Size)
	}
	_, blob := get(t, base+"/blobs/"+m.Layers[0].Digest.String(), "")
	if sha(blob) != m.Layers[0].Digest.String() || int64(len(blob)) != m.Layers[0].Size || m.Layers[0].Digest != res.Layer {
		t.Errorf("layer blob: sha256 %s, %d bytes; manifest says %s, %d bytes", sha(blob), len(blob), m.Layers[0].Digest, m.Layers[0].Size)
	}

	var cfg struct {
		Entrypoint []string `json:"entrypoint"`
		Rootfs     struct {
			Type    string   `json:"type"`
			DiffIDs []string `json:"diff_ids"`
		} `json:"rootfs"`
	}
	if err := json.Unmarshal(config, &cfg); err != nil {
		t.Fatal(err)
	}
	if diff := sha(gunzip(t, blob)); cfg.Rootfs.Type != "layers" || len(cfg.Rootfs.DiffIDs) != 1 || cfg.Rootfs.DiffIDs[0] != diff || res.DiffID.String() != diff {
		t.Errorf("config rootfs %+v, sha256 of the uncompressed layer %s", cfg.Rootfs, diff)
	}
	if len(cfg.Entrypoint) != 1 || cfg.Entrypoint[0] != "/macvlan-swarm" {
		t.Errorf("config entrypoint %q lost on the way", cfg.Entrypoint)
	}

	// Pushing the same plugin again changes nothing.
	again, err := Push(ctx, p, ref, opts)
	if err != nil {
		t.Fatal(err)
	}
	if again.Digest != res.Digest {
		t.Errorf("second push digest %s, first %s", again.Digest, res.Digest)
	}
}

func TestPushRefusesPlainHTTPWithoutInsecure(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{})
	p, err := Load(writePluginDir(t, testConfig))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := ParseReference(reg.Host+"/macvlan-swarm:test", false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = Push(ctx, p, ref, Options{Keychain: authn.NewMultiKeychain()})
	if !errors.Is(err, ErrPlainHTTP) {
		t.Fatalf("push over plain HTTP without Insecure: err %v, want ErrPlainHTTP", err)
	}
	// Nothing reached the registry.
	if entries, _ := os.ReadDir(reg.Dir); len(entries) != 0 {
		t.Errorf("registry storage not empty after a refused push: %v", entries)
	}
}
