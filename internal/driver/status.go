package driver

import (
	"sort"
	"time"
)

// Status is what GET /status on the plugin's socket answers: the networks
// and endpoints the driver holds on this node. (Issue 10 grows this into the
// operator's view: drift, errors, settings.)
type Status struct {
	Scope     string           `json:"scope"`
	Node      string           `json:"node"`
	Networks  []NetworkStatus  `json:"networks"`
	Endpoints []EndpointStatus `json:"endpoints"`
	// ReaperPending counts host links queued for the reaper's next batch.
	ReaperPending int `json:"reaper_pending"`
}

// NetworkStatus is one network in Status.
type NetworkStatus struct {
	ID            string `json:"id"`
	ParentSpec    string `json:"parent_spec"`
	Parent        string `json:"parent"`
	ParentCreated bool   `json:"parent_created"`
	Mode          string `json:"mode"`
	MTU           int    `json:"mtu,omitempty"`
	Internal      bool   `json:"internal"`
	Endpoints     int    `json:"endpoints"`
}

// EndpointStatus is one endpoint in Status.
type EndpointStatus struct {
	ID      string    `json:"id"`
	Network string    `json:"network"`
	IPv4    string    `json:"ipv4,omitempty"`
	IPv6    string    `json:"ipv6,omitempty"`
	MAC     string    `json:"mac"`
	Link    string    `json:"link"`
	Created time.Time `json:"created"`
	Joined  bool      `json:"joined"`
	Sandbox string    `json:"sandbox,omitempty"`
}

// Status describes the driver's state, sorted by id.
func (d *Driver) Status() any {
	d.st.mu.Lock()
	defer d.st.mu.Unlock()
	s := Status{Scope: d.scope, Node: d.node, Networks: []NetworkStatus{}, Endpoints: []EndpointStatus{}, ReaperPending: d.reaper.Pending()}
	count := map[string]int{}
	for _, e := range d.st.endpoints {
		count[e.NetworkID]++
		es := EndpointStatus{ID: e.ID, Network: e.NetworkID, MAC: e.MAC.String(), Link: e.Link, Created: e.Created,
			Joined: e.Sandbox.Key != "", Sandbox: e.Sandbox.Key}
		if e.IPv4.IsValid() {
			es.IPv4 = e.IPv4.String()
		}
		if e.IPv6.IsValid() {
			es.IPv6 = e.IPv6.String()
		}
		s.Endpoints = append(s.Endpoints, es)
	}
	for _, n := range d.st.networks {
		s.Networks = append(s.Networks, NetworkStatus{ID: n.ID, ParentSpec: n.ParentSpec, Parent: n.Parent, ParentCreated: n.ParentCreated,
			Mode: string(n.Mode), MTU: n.MTU, Internal: n.Internal, Endpoints: count[n.ID]})
	}
	sort.Slice(s.Networks, func(i, j int) bool { return s.Networks[i].ID < s.Networks[j].ID })
	sort.Slice(s.Endpoints, func(i, j int) bool { return s.Endpoints[i].ID < s.Endpoints[j].ID })
	return s
}
