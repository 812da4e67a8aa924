// Package version holds the build version of the macvlan-swarm binaries.
//
// The Makefile sets it at link time:
//
//	go build -ldflags "-X github.com/macvlan-swarm/macvlan-swarm/internal/version.Version=v0.1.0" ./cmd/...
//
// A plain `go build` leaves it at "dev".
package version

// Version is the release this binary was built from, as `git describe`
// printed it, or "dev" for a build that did not set it.
var Version = "dev"
