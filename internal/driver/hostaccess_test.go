package driver

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseHostAddresses(t *testing.T) {
	got, err := ParseHostAddresses(" lan=10.1.2.3, lan=fd00:1::3 ,eth1=192.168.5.9,,")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]netip.Addr{
		"lan":  {netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("fd00:1::3")},
		"eth1": {netip.MustParseAddr("192.168.5.9")},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got, err := ParseHostAddresses(""); err != nil || len(got) != 0 {
		t.Errorf("empty: %v, %v", got, err)
	}
	for _, c := range []struct{ v, want string }{
		{"10.1.2.3", "is not interface=address"},
		{"lan=", "is not interface=address"},
		{"=10.1.2.3", "is not interface=address"},
		{"lan=10.1.2.3/24", `"10.1.2.3/24" is not an IPv4 or IPv6 address`},
		{"lan=ten", "is not an IPv4 or IPv6 address"},
		{"lan=fe80::1%eth0", "is not an IPv4 or IPv6 address"},
		{"lan=127.0.0.1", "is not a unicast address a LAN host can have"},
		{"lan=fe80::1", "is not a unicast address"},
		{"lan=224.0.0.5", "is not a unicast address"},
		{"lan=0.0.0.0", "is not a unicast address"},
		{"lan=10.1.2.3,lan=10.1.2.4", `gives "lan" two IPv4 addresses`},
		{"averyveryverylongname=10.1.2.3", "the kernel allows at most 15"},
	} {
		if _, err := ParseHostAddresses(c.v); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "HOST_ADDRESS") {
			t.Errorf("HOST_ADDRESS=%q: err = %v, want one saying %q", c.v, err, c.want)
		}
	}
}
