// Package doctor is `macvlan-swarm doctor`: it looks at one node (its links
// and its engine) and, on a swarm manager, at the cluster, and reports what
// would keep the plugin's networks from working, each finding with its fix.
//
// The checks (checks.go) are pure functions over Facts, so each can be tested
// with a table of made-up facts; Gather (gather.go) fills Facts from the
// Docker API and, through internal/link, from the links of the caller's
// network namespace. Parent resolution and option parsing are the driver's
// own (driver.ParentCandidates, PickParent, NetworkOptions). The plugin's
// handlers never call the Docker API (it deadlocks the engine during its
// start-up): the doctor is a client command, run by an operator.
package doctor

import (
	"net/netip"
	"strings"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// Role is this node's place in a swarm.
type Role string

// The roles Gather reports.
const (
	RoleNone    Role = "none"    // not in a swarm
	RoleWorker  Role = "worker"  // in a swarm, no control API
	RoleManager Role = "manager" // swarm manager: the cluster checks run
)

// Facts is everything the checks look at. Cluster facts (Nodes, Services)
// are gathered on managers only.
type Facts struct {
	Node   string // this node's hostname, as the engine reports it
	NodeID string // this node's swarm id, "" outside a swarm
	Role   Role
	Plugin Plugin
	// Links are the links of the network namespace the doctor runs in,
	// which must be the node's (the engine's) namespace.
	Links    []link.Info
	Networks []Network
	// Strays are networks whose driver looks like this plugin under
	// another name or tag (IsOurName): the checks do not look into them.
	Strays   []Network
	Nodes    []Node
	Services []Service
}

// Plugin is what this node's engine says of the plugin.
type Plugin struct {
	Name      string // full reference, tag included: what `docker network create -d` names
	Installed bool
	Enabled   bool
	// Parents are the node's PARENTS aliases, from the plugin's settings.
	Parents map[string]string
	// ParentsSetting is the PARENTS setting as the engine has it;
	// ParentsErr says why it could not be read as aliases (the daemon
	// refuses to start with it).
	ParentsSetting string
	ParentsErr     string
}

// Node is one swarm node as a manager sees it.
type Node struct {
	ID    string
	Name  string // hostname
	State string // "ready", "down", ...
	// NetworkPlugins are the full names of the network plugins the node's
	// engine reported in its description: only enabled ones are listed.
	NetworkPlugins []string
}

// NetworkKind tells the networks the checks look at apart.
type NetworkKind string

// The kinds of network the checks look at; Gather leaves out all others.
const (
	KindPlugin  NetworkKind = "plugin"  // driver is the plugin
	KindMacvlan NetworkKind = "macvlan" // Docker's built-in macvlan driver
)

// Network is a network of the plugin or of the built-in macvlan driver.
type Network struct {
	ID      string
	Name    string
	Kind    NetworkKind
	Driver  string
	Options map[string]string
	// Ranges are the address ranges containers get addresses from: each
	// pool's --ip-range, else its subnet.
	Ranges []netip.Prefix
	// Swarm is set for a swarm-scope network (the managers hand out its
	// addresses); IPAMDriver is its --ipam-driver ("default" or empty for
	// the engine's built-in one).
	Swarm      bool
	IPAMDriver string
}

// Service is a swarm service, as far as the checks care.
type Service struct {
	Name string
	// EndpointMode is "vip", "dnsrr", or "" (the engine's default, vip).
	EndpointMode string
	// Networks are the targets of its network attachments: network ids
	// (the engine stores ids) or names.
	Networks []string
	// IngressPorts is set when it publishes ports through the routing
	// mesh, which dnsrr mode does not allow.
	IngressPorts bool
}

// Severity of a finding.
type Severity string

// An error breaks something now; a warning is a risk, or breaks something
// only under conditions the doctor cannot see.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Finding is one problem: which check found it, on what, what is wrong and
// how to fix it.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	Subject  string   `json:"subject"`
	Problem  string   `json:"problem"`
	Fix      string   `json:"fix"`
}

// NormalizeRef gives a plugin reference the form the engine lists plugins
// under: ":latest" added when there is no tag, Docker Hub's implicit
// "docker.io/" and "library/" removed.
func NormalizeRef(ref string) string {
	ref = strings.TrimSpace(ref)
	ref = strings.TrimPrefix(ref, "docker.io/")
	ref = strings.TrimPrefix(ref, "library/")
	if _, tag := SplitTag(ref); tag == "" {
		ref += ":latest"
	}
	return ref
}

// SplitTag splits "registry:5000/repo/name:tag" into the repository and the
// tag ("" when there is none); a digest is left on the repository.
func SplitTag(ref string) (repo, tag string) {
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		return ref[:i], ref[i+1:]
	}
	return ref, ""
}

// SameRef reports whether two plugin references name the same plugin.
func SameRef(a, b string) bool { return NormalizeRef(a) == NormalizeRef(b) }

// sameRepo reports whether two references are the same plugin at any tag.
func sameRepo(a, b string) bool {
	ra, _ := SplitTag(NormalizeRef(a))
	rb, _ := SplitTag(NormalizeRef(b))
	return ra == rb
}

// IsOurName reports whether a plugin reference's name, without registry
// and tag, ends with "macvlan-swarm": the plugins --plugin defaults to.
func IsOurName(ref string) bool {
	repo, _ := SplitTag(NormalizeRef(ref))
	if i := strings.LastIndexByte(repo, '/'); i >= 0 {
		repo = repo[i+1:]
	}
	return strings.HasSuffix(repo, "macvlan-swarm")
}
