package driver

import (
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/protocol"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]string
		want    netOptions
		wantErr string // substring; empty means success
	}{
		{name: "parent only", opts: map[string]string{"parent": "eth0"}, want: netOptions{ParentSpec: "eth0", Mode: "bridge"}},
		{name: "all options", opts: map[string]string{"parent": "eth0", "macvlan_mode": "vepa", "mtu": "1400"}, want: netOptions{ParentSpec: "eth0", Mode: "vepa", MTU: 1400}},
		{name: "engine mtu key", opts: map[string]string{"parent": "eth0", protocol.OptionMTU: "9000"}, want: netOptions{ParentSpec: "eth0", Mode: "bridge", MTU: 9000}},
		{name: "both mtu keys agreeing", opts: map[string]string{"parent": "eth0", "mtu": "1400", protocol.OptionMTU: "1400"}, want: netOptions{ParentSpec: "eth0", Mode: "bridge", MTU: 1400}},
		{name: "mode is case-insensitive", opts: map[string]string{"parent": "eth0", "macvlan_mode": "Private"}, want: netOptions{ParentSpec: "eth0", Mode: "private"}},
		{name: "candidate list", opts: map[string]string{"parent": "ens18|eth0"}, want: netOptions{ParentSpec: "ens18|eth0", Mode: "bridge"}},
		{name: "vlan parent", opts: map[string]string{"parent": "eth0.20"}, want: netOptions{ParentSpec: "eth0.20", Mode: "bridge"}},
		{name: "engine options ignored", opts: map[string]string{"parent": "eth0", "com.docker.network.bridge.name": "x"}, want: netOptions{ParentSpec: "eth0", Mode: "bridge"}},

		{name: "typo", opts: map[string]string{"pparent": "eth0"}, wantErr: `unknown option "pparent"; macvlan-swarm accepts parent, macvlan_mode, mtu`},
		{name: "two unknown sorted", opts: map[string]string{"parent": "eth0", "zz": "1", "aa": "2"}, wantErr: `unknown option "aa", "zz"`},
		{name: "no parent: internal on a private link", opts: map[string]string{}, want: netOptions{Mode: "bridge"}},
		{name: "blank parent", opts: map[string]string{"parent": "  "}, want: netOptions{Mode: "bridge"}},
		{name: "host_access", opts: map[string]string{"parent": "eth0", "host_access": "true"}, want: netOptions{ParentSpec: "eth0", Mode: "bridge", HostAccess: true}},
		{name: "host_access false", opts: map[string]string{"parent": "eth0", "host_access": "false", "macvlan_mode": "vepa"}, want: netOptions{ParentSpec: "eth0", Mode: "vepa"}},
		{name: "host_access bad value", opts: map[string]string{"parent": "eth0", "host_access": "yes-please"}, wantErr: `host_access "yes-please" is not valid: use true or false`},
		{name: "host_access empty", opts: map[string]string{"parent": "eth0", "host_access": ""}, want: netOptions{ParentSpec: "eth0", Mode: "bridge"}},
		{name: "host_access without parent", opts: map[string]string{"host_access": "true"}, wantErr: "host_access needs a parent: a network without one is internal"},
		{name: "host_access private", opts: map[string]string{"parent": "eth0", "host_access": "true", "macvlan_mode": "private"}, wantErr: "host_access needs macvlan_mode bridge: in private mode"},
		{name: "host_access vepa", opts: map[string]string{"parent": "eth0", "host_access": "1", "macvlan_mode": "vepa"}, wantErr: "in vepa mode"},
		{name: "host_access passthru", opts: map[string]string{"parent": "eth0", "host_access": "TRUE", "macvlan_mode": "passthru"}, wantErr: "in passthru mode"},
		{name: "loopback", opts: map[string]string{"parent": "lo"}, wantErr: "loopback interface cannot carry macvlan"},
		{name: "empty candidate", opts: map[string]string{"parent": "eth0||eth1"}, wantErr: "empty candidate"},
		{name: "long name", opts: map[string]string{"parent": "averyveryverylongname"}, wantErr: "the kernel allows at most 15"},
		{name: "slash", opts: map[string]string{"parent": "eth0/1"}, wantErr: `"eth0/1" is not an interface name`},
		// Ownership is decided on the link (its mark), never by the name.
		{name: "user link of our name shape", opts: map[string]string{"parent": "mvs0123456789ab"}, want: netOptions{ParentSpec: "mvs0123456789ab", Mode: "bridge"}},
		{name: "user link with our prefix", opts: map[string]string{"parent": "mvsuplink"}, want: netOptions{ParentSpec: "mvsuplink", Mode: "bridge"}},
		{name: "duplicate candidate", opts: map[string]string{"parent": "eth0|eth0"}, wantErr: `parent "eth0|eth0" names "eth0" twice: list each interface once`},
		{name: "duplicate candidate spaced", opts: map[string]string{"parent": "eth0| eth1 |eth1"}, wantErr: `names "eth1" twice`},
		{name: "vlan zero", opts: map[string]string{"parent": "eth0.0"}, wantErr: "VLAN id 0 in \"eth0.0\" is out of range: use 1 to 4094"},
		{name: "vlan too big", opts: map[string]string{"parent": "eth0.4095"}, wantErr: "out of range: use 1 to 4094"},
		{name: "bad mode", opts: map[string]string{"parent": "eth0", "macvlan_mode": "bridged"}, wantErr: `macvlan_mode "bridged" is not valid; use one of bridge, private, vepa, passthru`},
		{name: "mtu not a number", opts: map[string]string{"parent": "eth0", "mtu": "big"}, wantErr: `mtu "big" is not valid: give a whole number from 68 to 65535`},
		{name: "mtu too small", opts: map[string]string{"parent": "eth0", "mtu": "67"}, wantErr: `mtu "67" is not valid`},
		{name: "mtu keys disagree", opts: map[string]string{"parent": "eth0", "mtu": "1400", protocol.OptionMTU: "1500"}, wantErr: "disagree"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOptions(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tc.want.Announce == (announceOptions{}) {
				tc.want.Announce = defaultAnnounce // TestParseAnnounceOptions covers them
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseAnnounceOptions(t *testing.T) {
	with := func(kv ...string) map[string]string {
		m := map[string]string{"parent": "eth0"}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		name    string
		opts    map[string]string
		want    announceOptions
		wantErr string
	}{
		{name: "defaults: engine 28's, no check", opts: with(), want: announceOptions{Messages: 3, Interval: time.Second, CheckTimeout: 200 * time.Millisecond}},
		{name: "engine names accepted", opts: with(optAdvertiseNMsgs, "1", optAdvertiseMs, "250"), want: announceOptions{Messages: 1, Interval: 250 * time.Millisecond, CheckTimeout: 200 * time.Millisecond}},
		{name: "zero turns them off", opts: with(optAdvertiseNMsgs, "0"), want: announceOptions{Messages: 0, Interval: time.Second, CheckTimeout: 200 * time.Millisecond}},
		{name: "range ends", opts: with(optAdvertiseNMsgs, "3", optAdvertiseMs, "2000"), want: announceOptions{Messages: 3, Interval: 2 * time.Second, CheckTimeout: 200 * time.Millisecond}},
		{name: "low interval end", opts: with(optAdvertiseMs, "100"), want: announceOptions{Messages: 3, Interval: 100 * time.Millisecond, CheckTimeout: 200 * time.Millisecond}},
		{name: "check on", opts: with(optAddressCheck, "true"), want: announceOptions{Messages: 3, Interval: time.Second, Check: true, CheckTimeout: 200 * time.Millisecond}},
		{name: "check with timeout", opts: with(optAddressCheck, "true", optAddressCheckAfter, "150ms"), want: announceOptions{Messages: 3, Interval: time.Second, Check: true, CheckTimeout: 150 * time.Millisecond}},
		{name: "check off", opts: with(optAddressCheck, "false"), want: announceOptions{Messages: 3, Interval: time.Second, CheckTimeout: 200 * time.Millisecond}},

		{name: "too many messages", opts: with(optAdvertiseNMsgs, "4"), wantErr: `com.docker.network.advertise_addr_nmsgs "4" is not valid: give a whole number from 0 to 3 (0 turns announcements off)`},
		{name: "negative messages", opts: with(optAdvertiseNMsgs, "-1"), wantErr: "from 0 to 3"},
		{name: "messages not a number", opts: with(optAdvertiseNMsgs, "three"), wantErr: `advertise_addr_nmsgs "three" is not valid`},
		{name: "interval too short", opts: with(optAdvertiseMs, "99"), wantErr: `com.docker.network.advertise_addr_ms "99" is not valid: give whole milliseconds from 100 to 2000`},
		{name: "interval too long", opts: with(optAdvertiseMs, "2001"), wantErr: "from 100 to 2000"},
		{name: "interval with unit", opts: with(optAdvertiseMs, "1s"), wantErr: `advertise_addr_ms "1s" is not valid`},
		{name: "check not a bool", opts: with(optAddressCheck, "yes please"), wantErr: `address_check "yes please" is not valid: give true or false`},
		{name: "check timeout too long", opts: with(optAddressCheck, "true", optAddressCheckAfter, "5s"), wantErr: `address_check_timeout "5s" is not valid: give a duration from 20ms to 1s, e.g. 150ms`},
		{name: "check timeout too short", opts: with(optAddressCheckAfter, "1ms"), wantErr: "from 20ms to 1s"},
		{name: "check timeout without unit", opts: with(optAddressCheckAfter, "150"), wantErr: `address_check_timeout "150" is not valid`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseOptions(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got.Announce != tc.want {
				t.Fatalf("got %+v, want %+v", got.Announce, tc.want)
			}
		})
	}
}

func TestParsePoolsSortsByFamily(t *testing.T) {
	// A swarm manager sends both families in IPv4Data.
	v4, v6, err := parsePools([]protocol.IPAMData{
		{Pool: "10.62.0.0/24", Gateway: "10.62.0.1/24"},
		{Pool: "fd00:62::/64", Gateway: "fd00:62::1/64"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(v4) != 1 || v4[0].Subnet.String() != "10.62.0.0/24" || len(v6) != 1 || v6[0].Subnet.String() != "fd00:62::/64" {
		t.Fatalf("v4 %+v v6 %+v", v4, v6)
	}
	if _, _, err := parsePools([]protocol.IPAMData{{Pool: "10.0.0.0/24", Gateway: "10.9.0.1/24"}}); err == nil || !strings.Contains(err.Error(), "not an address inside subnet") {
		t.Fatalf("gateway outside pool: err = %v", err)
	}
	if _, _, err := parsePools([]protocol.IPAMData{{Pool: "nonsense"}}); err == nil {
		t.Fatal("bad pool accepted")
	}
}

func TestEndpointMACAndLinkName(t *testing.T) {
	id := "0114be5fcd92206a4cc69bb83dbaf1e97351bc3590c34bc9ede1aac0a2e39225"
	if got := linkName(id); got != "mvs0114be5fcd92" || len(got) > 15 {
		t.Fatalf("linkName = %q", got)
	}
	if got := linkName("not-hex-id"); len(got) != 15 || !strings.HasPrefix(got, "mvs") || strings.Trim(got[3:], "0123456789abcdef") != "" {
		t.Fatalf("linkName of a non-hex id = %q", got)
	}
	v4 := mustPrefix(t, "10.61.0.2/24")
	if got := endpointMAC(id, v4).String(); got != "02:42:0a:3d:00:02" {
		t.Fatalf("IPv4-derived MAC = %s", got)
	}
	a, b := endpointMAC(id, noPrefix), endpointMAC(id, noPrefix)
	if a.String() != b.String() || a[0] != 0x06 {
		t.Fatalf("IPv6-only MAC %s / %s: want stable and starting 06", a, b)
	}
	if c := endpointMAC(strings.Repeat("f", 64), noPrefix); c.String() == a.String() {
		t.Fatalf("two ids gave the same MAC %s", c)
	}
}
