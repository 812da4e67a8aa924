// Package protocol speaks the Docker engine's remote network-driver protocol
// (docker.networkdriver/1.0): JSON over HTTP on a unix socket. It knows the
// wire shapes and nothing of netlink or saved state; it hands typed requests
// to a Driver and writes back what the Driver returns.
//
// Field names follow what the engine sends (see docs/design.md). Decoding is
// lenient: unknown fields are ignored because newer engines add them.
package protocol

// Driver is what the protocol layer calls. Each method gets a decoded request
// and returns a response or an error; an error reaches the user as
// "NetworkDriver.<Method>: <message>", so messages are written for the person
// who typed the docker command.
type Driver interface {
	GetCapabilities() (*CapabilitiesResponse, error)
	AllocateNetwork(*AllocateNetworkRequest) (*AllocateNetworkResponse, error)
	FreeNetwork(*FreeNetworkRequest) error
	CreateNetwork(*CreateNetworkRequest) error
	DeleteNetwork(*DeleteNetworkRequest) error
	CreateEndpoint(*CreateEndpointRequest) (*CreateEndpointResponse, error)
	EndpointOperInfo(*EndpointOperInfoRequest) (*EndpointOperInfoResponse, error)
	DeleteEndpoint(*DeleteEndpointRequest) error
	Join(*JoinRequest) (*JoinResponse, error)
	Leave(*LeaveRequest) error
	ProgramExternalConnectivity(*ExternalConnectivityRequest) error
	RevokeExternalConnectivity(*ExternalConnectivityRequest) error
	DiscoverNew(*DiscoveryNotification) error
	DiscoverDelete(*DiscoveryNotification) error
	GwAllocCheck(*GwAllocCheckRequest) (*GwAllocCheckResponse, error)
}

// Scope values for CapabilitiesResponse.
const (
	ScopeGlobal = "global"
	ScopeLocal  = "local"
)

// Option keys the engine puts in CreateNetwork's Options.
const (
	OptionGeneric    = "com.docker.network.generic"
	OptionEnableIPv6 = "com.docker.network.enable_ipv6"
	OptionEnableIPv4 = "com.docker.network.enable_ipv4"
	OptionInternal   = "com.docker.network.internal"
	OptionMTU        = "com.docker.network.driver.mtu"
)

// ActivateResponse answers /Plugin.Activate.
type ActivateResponse struct {
	Implements []string
}

// CapabilitiesResponse answers GetCapabilities. GwAllocChecker (read by
// engines 28 and newer, ignored by older ones) says the plugin answers
// GwAllocCheck.
type CapabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
	GwAllocChecker    bool `json:",omitempty"`
}

// GwAllocCheckRequest asks, before a standalone engine (28 and newer)
// reserves a network's gateway addresses, whether the network needs them.
// Options are the network's options as CreateNetwork will get them.
type GwAllocCheckRequest struct {
	Options map[string]any
}

// GwAllocCheckResponse tells the engine not to reserve a gateway address
// of that family unless the user gave one.
type GwAllocCheckResponse struct {
	SkipIPv4 bool
	SkipIPv6 bool
}

// IPAMData is one address pool. Gateway and AuxAddresses values are CIDR
// strings ("10.1.0.1/24"), not bare addresses.
type IPAMData struct {
	AddressSpace string
	Pool         string
	Gateway      string            `json:",omitempty"`
	AuxAddresses map[string]string `json:",omitempty"`
}

// AllocateNetworkRequest is sent to the swarm leader only. Options is flat:
// the user's -o options. IPv4Data may hold IPv6 pools too; IPv6Data is null.
type AllocateNetworkRequest struct {
	NetworkID string
	Options   map[string]string
	IPv4Data  []IPAMData
	IPv6Data  []IPAMData
}

// AllocateNetworkResponse carries the options every node's CreateNetwork
// will see under com.docker.network.generic.
type AllocateNetworkResponse struct {
	Options map[string]string
}

// FreeNetworkRequest undoes AllocateNetwork on the leader.
type FreeNetworkRequest struct {
	NetworkID string
}

// CreateNetworkRequest creates a network on one node. Options values are of
// mixed JSON types: com.docker.network.generic is an object of strings,
// enable_ipv6/enable_ipv4/internal are booleans.
type CreateNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []IPAMData
	IPv6Data  []IPAMData
}

// DeleteNetworkRequest removes a network from one node.
type DeleteNetworkRequest struct {
	NetworkID string
}

// EndpointInterface is the interface part of CreateEndpoint. IPAM has filled
// Address (and AddressIPv6 when enabled) as CIDR strings; MacAddress is set
// only when the user gave one.
type EndpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

// CreateEndpointRequest creates an endpoint on a network.
type CreateEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *EndpointInterface
	Options    map[string]any
}

// EndpointInterfaceResponse holds only fields the request left empty:
// returning one that was set makes the engine fail the endpoint.
type EndpointInterfaceResponse struct {
	Address     string `json:",omitempty"`
	AddressIPv6 string `json:",omitempty"`
	MacAddress  string `json:",omitempty"`
}

// CreateEndpointResponse answers CreateEndpoint; Interface is nil when the
// driver has nothing to add (the response is then "{}").
type CreateEndpointResponse struct {
	Interface *EndpointInterfaceResponse `json:",omitempty"`
}

// EndpointOperInfoRequest asks for an endpoint's operational data.
type EndpointOperInfoRequest struct {
	NetworkID  string
	EndpointID string
}

// EndpointOperInfoResponse is shown in docker inspect output.
type EndpointOperInfoResponse struct {
	Value map[string]any
}

// DeleteEndpointRequest removes an endpoint.
type DeleteEndpointRequest struct {
	NetworkID  string
	EndpointID string
}

// JoinRequest attaches an endpoint to a sandbox (a container).
type JoinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

// InterfaceName names the host link the engine moves into the container
// (SrcName) and the prefix of its name there (DstPrefix, e.g. "eth": the
// engine adds the lowest number no interface of that prefix has). DstName,
// the whole name, is in the engine's remote API but ignored by every engine
// up to 28.5 (its remote driver passes only SrcName and DstPrefix on).
type InterfaceName struct {
	SrcName   string
	DstPrefix string
	DstName   string `json:",omitempty"`
}

// StaticRoute is a route the engine adds inside the container.
type StaticRoute struct {
	Destination string
	RouteType   int
	NextHop     string `json:",omitempty"`
}

// JoinResponse answers Join. Gateways are bare addresses.
type JoinResponse struct {
	InterfaceName         *InterfaceName `json:",omitempty"`
	Gateway               string         `json:",omitempty"`
	GatewayIPv6           string         `json:",omitempty"`
	StaticRoutes          []StaticRoute  `json:",omitempty"`
	DisableGatewayService bool
}

// LeaveRequest detaches an endpoint from its sandbox.
type LeaveRequest struct {
	NetworkID  string
	EndpointID string
}

// ExternalConnectivityRequest is used by Program- and
// RevokeExternalConnectivity.
type ExternalConnectivityRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]any
}

// DiscoveryNotification is sent by DiscoverNew and DiscoverDelete.
type DiscoveryNotification struct {
	DiscoveryType int
	DiscoveryData any
}
