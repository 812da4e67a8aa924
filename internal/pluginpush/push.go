package pluginpush

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ErrPlainHTTP is wrapped into the error of a push that needed plain HTTP
// without Options.Insecure.
var ErrPlainHTTP = errors.New("plain HTTP to the registry is not allowed")

// Options tune a push. The zero value pushes over HTTPS only, with the
// credentials `docker login` saved.
type Options struct {
	// Insecure allows plain HTTP. Without it every request must use HTTPS,
	// also to loopback and private addresses, which go-containerregistry
	// would otherwise try over plain HTTP by itself.
	Insecure bool
	// Keychain finds credentials; nil means authn.DefaultKeychain
	// ($DOCKER_CONFIG or ~/.docker/config.json, credential helpers included).
	Keychain authn.Keychain
	// Transport carries the requests; nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// UserAgent is sent with every request when set.
	UserAgent string
}

// Result tells what a push wrote.
type Result struct {
	Ref       name.Tag
	Digest    v1.Hash // manifest digest: pin the plugin with Ref.Context().Digest(Digest.String())
	Config    v1.Hash
	Layer     v1.Hash
	DiffID    v1.Hash
	LayerSize int64
}

// ParseReference parses a push target such as
// 127.0.0.1:5000/macvlan-swarm:0.1.0. The tag defaults to "latest"; a digest
// cannot be pushed to.
func ParseReference(s string, insecure bool) (name.Tag, error) {
	var opts []name.Option
	if insecure {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(s, opts...)
	if err != nil {
		return name.Tag{}, fmt.Errorf("invalid plugin reference %q: %w (want [REGISTRY/]REPOSITORY[:TAG], e.g. 127.0.0.1:5000/macvlan-swarm:0.1.0)", s, err)
	}
	return tag, nil
}

// Push uploads p's layer, config and manifest to ref. Blobs the registry
// already holds are not sent again.
func Push(ctx context.Context, p *Plugin, ref name.Tag, opts Options) (Result, error) {
	keychain := opts.Keychain
	if keychain == nil {
		keychain = authn.DefaultKeychain
	}
	base := opts.Transport
	if base == nil {
		base = remote.DefaultTransport
	}
	guard := &httpsOnly{next: base}
	var rt http.RoundTripper = guard
	if opts.Insecure {
		rt = base
	}
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain),
		remote.WithTransport(rt),
	}
	if opts.UserAgent != "" {
		ropts = append(ropts, remote.WithUserAgent(opts.UserAgent))
	}

	if err := remote.Write(ref, p, ropts...); err != nil {
		if guard.refused.Load() {
			return Result{}, fmt.Errorf("push %s: HTTPS failed and %w: %v", ref, ErrPlainHTTP, err)
		}
		return Result{}, fmt.Errorf("push %s: %w", ref, err)
	}
	digest, err := p.Digest()
	if err != nil {
		return Result{}, err
	}
	config, err := p.ConfigName()
	if err != nil {
		return Result{}, err
	}
	return Result{
		Ref:       ref,
		Digest:    digest,
		Config:    config,
		Layer:     p.LayerDigest(),
		DiffID:    p.LayerDiffID(),
		LayerSize: p.LayerSize(),
	}, nil
}

// httpsOnly refuses every request that is not HTTPS and remembers that it
// did, so that the caller can say why a push failed.
type httpsOnly struct {
	next    http.RoundTripper
	refused atomic.Bool
}

func (t *httpsOnly) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme != "https" {
		t.refused.Store(true)
		if r.Body != nil {
			r.Body.Close() // a RoundTripper closes the body, even on error
		}
		return nil, errors.New("refused: not HTTPS")
	}
	return t.next.RoundTrip(r)
}
