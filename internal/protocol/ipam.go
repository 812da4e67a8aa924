package protocol

// The IPAM side of the plugin (docker.ipamdriver/1.0): the same socket also
// serves POST /IpamDriver.<Method> when the handler is given an IPAM
// (WithIPAM). Addresses in requests are bare ("10.1.0.5"); addresses and
// pools in responses are CIDR strings ("10.1.0.5/24").

// IPAM is what the protocol layer calls for /IpamDriver.* requests. Errors
// reach the user (a failed docker network create or docker run, a task's
// error) as they are, so they are written for the person who typed the
// command.
type IPAM interface {
	GetIPAMCapabilities() (*IPAMCapabilitiesResponse, error)
	GetDefaultAddressSpaces() (*AddressSpacesResponse, error)
	RequestPool(*RequestPoolRequest) (*RequestPoolResponse, error)
	ReleasePool(*ReleasePoolRequest) error
	RequestAddress(*RequestAddressRequest) (*RequestAddressResponse, error)
	ReleaseAddress(*ReleaseAddressRequest) error
}

// The address spaces the plugin's address manager reports
// (GetDefaultAddressSpaces). Every RequestPool names one, and every pool of
// a network made with --ipam-driver <this plugin> shows it in the
// AddressSpace of CreateNetwork's IPv4Data and IPv6Data.
const (
	IPAMLocalSpace  = "macvlan-swarm-local"
	IPAMGlobalSpace = "macvlan-swarm-global"
)

// Option keys the engine puts in RequestAddress's Options.
const (
	// IPAMOptionRequestType marks the request for a network's gateway
	// (value IPAMRequestGateway).
	IPAMOptionRequestType = "RequestAddressType"
	IPAMRequestGateway    = "com.docker.network.gateway"
)

// IPAMCapabilitiesResponse answers /IpamDriver.GetCapabilities.
// RequiresRequestReplay asks the engine to request every pool and address
// again after a daemon restart; this plugin saves its own and says false.
type IPAMCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

// AddressSpacesResponse answers /IpamDriver.GetDefaultAddressSpaces.
type AddressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

// RequestPoolRequest asks for a pool: Pool is the network's --subnet,
// SubPool its --ip-range (empty when not given).
type RequestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

// RequestPoolResponse names the pool: the engine sends PoolID back with
// every address request and release.
type RequestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

// ReleasePoolRequest gives a pool back (its network is gone on this engine).
type ReleasePoolRequest struct {
	PoolID string
}

// RequestAddressRequest asks for an address of a pool: Address when the
// user (or the swarm managers) chose one, empty for any free one.
type RequestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

// RequestAddressResponse gives the address with the pool's prefix length.
type RequestAddressResponse struct {
	Address string
	Data    map[string]string
}

// ReleaseAddressRequest gives an address back.
type ReleaseAddressRequest struct {
	PoolID  string
	Address string
}
