package pluginpush

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// PluginConfigMediaType is the media type of a plugin's config blob.
const PluginConfigMediaType types.MediaType = "application/vnd.docker.plugin.v1+json"

// Plugin is a plugin directory turned into registry content. It implements
// v1.Image so that go-containerregistry can push it; its config is a plugin
// config, not an image config.
type Plugin struct {
	config   []byte // config blob: config.json with rootfs.diff_ids
	manifest []byte
	layer    *layer
}

var _ v1.Image = (*Plugin)(nil)

// Load reads dir/config.json and dir/rootfs, builds the layer and the config
// blob, and returns the plugin ready to push.
func Load(dir string) (*Plugin, error) {
	cfgPath := filepath.Join(dir, "config.json")
	raw, err := os.ReadFile(cfgPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: run `make plugin` first, or pass the plugin directory with -dir", cfgPath)
	}
	if err != nil {
		return nil, err
	}
	rootfs := filepath.Join(dir, "rootfs")
	st, err := os.Stat(rootfs)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s not found: run `make plugin` first, or pass the plugin directory with -dir", rootfs)
	}
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory", rootfs)
	}

	l, err := buildLayer(rootfs)
	if err != nil {
		return nil, err
	}
	config, err := configBlob(cfgPath, raw, l.diffID)
	if err != nil {
		return nil, err
	}
	p := &Plugin{config: config, layer: l}
	m := v1.Manifest{
		SchemaVersion: 2,
		MediaType:     types.DockerManifestSchema2,
		Config: v1.Descriptor{
			MediaType: PluginConfigMediaType,
			Size:      int64(len(config)),
			Digest:    sha256Of(config),
		},
		Layers: []v1.Descriptor{{
			MediaType: types.DockerLayer,
			Size:      int64(len(l.gz)),
			Digest:    l.digest,
		}},
	}
	if p.manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	return p, nil
}

// configBlob checks config.json for what the engine cannot do without and
// returns it with "rootfs" set to the one layer. Other members are kept as
// written; a "rootfs" already there is replaced.
func configBlob(path string, raw []byte, diffID v1.Hash) ([]byte, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(raw, &members); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	if members == nil {
		return nil, fmt.Errorf("%s: not a JSON object", path)
	}
	// The fields the engine needs to run a plugin at all.
	var check struct {
		Entrypoint []string `json:"entrypoint"`
		Interface  struct {
			Types  []string `json:"types"`
			Socket string   `json:"socket"`
		} `json:"interface"`
	}
	if err := json.Unmarshal(raw, &check); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case len(check.Entrypoint) == 0:
		return nil, fmt.Errorf("%s: entrypoint is empty: the engine would have nothing to run", path)
	case len(check.Interface.Types) == 0:
		return nil, fmt.Errorf("%s: interface.types is empty (want e.g. [\"docker.networkdriver/1.0\"])", path)
	case check.Interface.Socket == "":
		return nil, fmt.Errorf("%s: interface.socket is empty (want a bare socket name such as \"macvlan-swarm.sock\")", path)
	}

	rootfs, err := json.Marshal(struct {
		Type    string   `json:"type"`
		DiffIDs []string `json:"diff_ids"`
	}{"layers", []string{diffID.String()}})
	if err != nil {
		return nil, err
	}
	members["rootfs"] = rootfs
	return json.Marshal(members) // members in key order: reproducible
}

func sha256Of(b []byte) v1.Hash {
	h, _, _ := v1.SHA256(bytes.NewReader(b)) // reading from memory cannot fail
	return h
}

// LayerDigest is the digest of the gzipped rootfs blob.
func (p *Plugin) LayerDigest() v1.Hash { return p.layer.digest }

// LayerDiffID is the digest of the uncompressed rootfs tar.
func (p *Plugin) LayerDiffID() v1.Hash { return p.layer.diffID }

// LayerSize is the size of the gzipped rootfs blob in bytes.
func (p *Plugin) LayerSize() int64 { return int64(len(p.layer.gz)) }

// Layers returns the one rootfs layer.
func (p *Plugin) Layers() ([]v1.Layer, error) { return []v1.Layer{p.layer}, nil }

// MediaType is the Docker schema2 manifest type, the only one the engine
// accepts for plugins.
func (p *Plugin) MediaType() (types.MediaType, error) { return types.DockerManifestSchema2, nil }

// Size is the size of the manifest.
func (p *Plugin) Size() (int64, error) { return int64(len(p.manifest)), nil }

// ConfigName is the digest of the config blob.
func (p *Plugin) ConfigName() (v1.Hash, error) { return sha256Of(p.config), nil }

// ConfigFile decodes the config blob as an image config. A plugin config is
// not one: only RootFS comes through. Pushing does not use it.
func (p *Plugin) ConfigFile() (*v1.ConfigFile, error) {
	var cf v1.ConfigFile
	if err := json.Unmarshal(p.config, &cf); err != nil {
		return nil, err
	}
	return &cf, nil
}

// RawConfigFile is the config blob: config.json plus rootfs.
func (p *Plugin) RawConfigFile() ([]byte, error) { return p.config, nil }

// Digest is the manifest digest, the one the registry reports for the tag.
func (p *Plugin) Digest() (v1.Hash, error) { return sha256Of(p.manifest), nil }

// Manifest returns the parsed manifest.
func (p *Plugin) Manifest() (*v1.Manifest, error) {
	return v1.ParseManifest(bytes.NewReader(p.manifest))
}

// RawManifest returns the manifest as pushed.
func (p *Plugin) RawManifest() ([]byte, error) { return p.manifest, nil }

// LayerByDigest returns the rootfs layer if h is its blob digest.
func (p *Plugin) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == p.layer.digest {
		return p.layer, nil
	}
	return nil, fmt.Errorf("plugin has no layer with digest %s", h)
}

// LayerByDiffID returns the rootfs layer if h is its uncompressed digest.
func (p *Plugin) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	if h == p.layer.diffID {
		return p.layer, nil
	}
	return nil, fmt.Errorf("plugin has no layer with diff id %s", h)
}
