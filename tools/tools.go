//go:build tools

// Package tools pins modules that the project's commands and tests import,
// so that go.mod keeps them before the code that uses them lands.
package tools

import (
	_ "github.com/docker/docker/client"
	_ "github.com/google/go-containerregistry/pkg/v1/remote"
	_ "github.com/vishvananda/netlink"
	_ "github.com/vishvananda/netns"
	_ "go.etcd.io/bbolt"
)
