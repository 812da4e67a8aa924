//go:build e2e

package e2e

// What the single-engine suites (functional, life cycle, packaging, demo)
// do differently per engine. They run on every engine of the matrix
// (MVS_ENGINE=20.10|26.1|28.5, see docs/engines.md):
//
//   - 20.10 takes a global-scope plugin network only in swarm mode: the
//     node becomes a one-node swarm and networks are --attachable swarm
//     networks (scope "swarm").
//   - 26.1 and 28.5 take it on a standalone engine: no swarm, no
//     --attachable (swarm-only), the network's scope is "global".

import (
	"testing"

	"github.com/macvlan-swarm/macvlan-swarm/test/e2e/lab"
)

// pluginNets is how a one-node test makes networks of the plugin on its
// engine.
type pluginNets struct {
	// Swarm: the node is a one-node swarm (engine 20.10).
	Swarm bool
	// Flags go into every `docker network create -d <plugin>`.
	Flags []string
	// Scope is what `docker network inspect -f {{.Scope}}` shows for a
	// network of the plugin with its default SCOPE=global.
	Scope string
}

// readyForPluginNets makes node n ready for networks of plugin, which must be
// installed and enabled already (so the node's first swarm description
// lists it): a one-node swarm on engine 20.10, nothing on newer engines.
func readyForPluginNets(t *testing.T, n *lab.Node, plugin string) pluginNets {
	t.Helper()
	if n.Engine().GlobalStandalone {
		return pluginNets{Scope: "global"}
	}
	lab.SingleNodeSwarm(t, n)
	lab.WaitPluginListed(t, n, plugin, n)
	return pluginNets{Swarm: true, Flags: []string{"--attachable"}, Scope: "swarm"}
}
