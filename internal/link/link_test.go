package link_test

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
	"github.com/macvlan-swarm/macvlan-swarm/internal/link/linktest"
)

// parent is the veth every test hangs its macvlans on. Its MTU is above the
// default so a test can tell "MTU as asked" from "MTU inherited".
const (
	parent    = "par0"
	parentMTU = 9000
)

func newLab(t *testing.T) (*linktest.Lab, *link.Handle) {
	t.Helper()
	t.Parallel()
	lab := linktest.New(t)
	lab.Veth(t, parent, parentMTU)
	return lab, lab.Handle()
}

func mustGet(t *testing.T, h *link.Handle, name string) link.Info {
	t.Helper()
	info, err := h.Get(name)
	if err != nil {
		t.Fatalf("Get(%q): %v", name, err)
	}
	return info
}

// testMark is the ownership alias the tests' links get.
const testMark = "macvlan-swarm endpoint test"

// names lists the namespace's link names, sorted.
func names(t *testing.T, h *link.Handle) []string {
	t.Helper()
	infos, err := h.List()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range infos {
		out = append(out, i.Name)
	}
	slices.Sort(out)
	return out
}

func TestAddMacvlanModes(t *testing.T) {
	t.Parallel()
	for i, mode := range link.Modes {
		t.Run(string(mode), func(t *testing.T) {
			_, h := newLab(t)
			parentMAC := mustGet(t, h, parent).MAC.String()
			mac := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, byte(i + 1)}
			spec := link.MacvlanSpec{Name: "mv0", Parent: parent, Mode: mode, MTU: 1400, MAC: mac, Mark: testMark}
			if err := h.AddMacvlan(spec); err != nil {
				t.Fatalf("AddMacvlan(%+v): %v", spec, err)
			}
			par := mustGet(t, h, parent)
			got := mustGet(t, h, "mv0")
			if !got.Ours() || got.Alias != testMark {
				t.Errorf("alias = %q, want the mark %q", got.Alias, testMark)
			}
			if got.Kind != "macvlan" || got.MacvlanMode != mode {
				t.Errorf("kind/mode = %q/%q, want macvlan/%q", got.Kind, got.MacvlanMode, mode)
			}
			if got.MTU != 1400 {
				t.Errorf("MTU = %d, want 1400", got.MTU)
			}
			if got.ParentIndex != par.Index {
				t.Errorf("ParentIndex = %d, want %d (%s)", got.ParentIndex, par.Index, parent)
			}
			if got.Up {
				t.Error("link is up, want it created down")
			}
			// passthru hands the whole parent to one macvlan: the kernel
			// silently ignores the requested address and copies the
			// parent's (which it leaves alone).
			wantMAC := mac.String()
			if mode == "passthru" {
				wantMAC = parentMAC
			}
			if got.MAC.String() != wantMAC {
				t.Errorf("MAC = %s, want %s", got.MAC, wantMAC)
			}
			if par.MAC.String() != parentMAC {
				t.Errorf("parent MAC changed from %s to %s", parentMAC, par.MAC)
			}
		})
	}
}

func TestAddMacvlanDefaults(t *testing.T) {
	_, h := newLab(t)
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mv0", Parent: parent, Mark: testMark}); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, h, "mv0")
	if got.MacvlanMode != "bridge" || got.MTU != parentMTU || len(got.MAC) != 6 {
		t.Errorf("got mode %q, MTU %d, MAC %s; want bridge, %d (the parent's), a random MAC",
			got.MacvlanMode, got.MTU, got.MAC, parentMTU)
	}
}

func TestAddMacvlanDuplicate(t *testing.T) {
	_, h := newLab(t)
	spec := link.MacvlanSpec{Name: "mv0", Parent: parent, Mode: "bridge", Mark: testMark}
	if err := h.AddMacvlan(spec); err != nil {
		t.Fatal(err)
	}
	err := h.AddMacvlan(spec)
	if !errors.Is(err, unix.EEXIST) {
		t.Fatalf("second AddMacvlan = %v, want an error wrapping EEXIST", err)
	}
	if want := `create macvlan "mv0" on "par0": `; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("error %q does not start with %q", err, want)
	}
}

func TestAddMacvlanMissingParent(t *testing.T) {
	_, h := newLab(t)
	err := h.AddMacvlan(link.MacvlanSpec{Name: "mv0", Parent: "eth9", Mode: "bridge", Mark: testMark})
	if !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("AddMacvlan on a missing parent = %v, want ErrNotFound", err)
	}
	if !strings.Contains(err.Error(), `"eth9"`) {
		t.Errorf("error %q does not name the parent", err)
	}
}

func TestAddMacvlanInvalid(t *testing.T) {
	_, h := newLab(t)
	for _, tc := range []struct {
		name string
		spec link.MacvlanSpec
		want string
	}{
		{"empty name", link.MacvlanSpec{Parent: parent}, "empty interface name"},
		{"long name", link.MacvlanSpec{Name: "mvs0123456789abc", Parent: parent}, "at most 15"},
		{"mode", link.MacvlanSpec{Name: "mv0", Parent: parent, Mode: "l2"}, `unknown mode "l2"`},
		{"source mode", link.MacvlanSpec{Name: "mv0", Parent: parent, Mode: "source"}, `unknown mode "source"`},
		{"mtu", link.MacvlanSpec{Name: "mv0", Parent: parent, MTU: -1}, "invalid mtu -1"},
		{"short mac", link.MacvlanSpec{Name: "mv0", Parent: parent, MAC: net.HardwareAddr{2, 0, 0}}, "six hex bytes"},
		{"multicast mac", link.MacvlanSpec{Name: "mv0", Parent: parent, MAC: net.HardwareAddr{1, 0, 0x5e, 0, 0, 1}}, "multicast"},
		{"zero mac", link.MacvlanSpec{Name: "mv0", Parent: parent, MAC: make(net.HardwareAddr, 6)}, "all zeros"},
	} {
		err := h.AddMacvlan(tc.spec)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: AddMacvlan = %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := h.Get("mv0"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("an invalid spec reached the kernel: Get = %v", err)
	}
}

func TestGetMissing(t *testing.T) {
	_, h := newLab(t)
	if _, err := h.Get("nope0"); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("Get(missing) = %v, want ErrNotFound", err)
	}
}

func TestDeleteIdempotent(t *testing.T) {
	_, h := newLab(t)
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mv0", Parent: parent, Mark: testMark}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := h.Delete("mv0"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if _, err := h.Get("mv0"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("after Delete, Get = %v, want ErrNotFound", err)
	}
	if err := h.Delete("never0"); err != nil {
		t.Errorf("Delete(never existed) = %v, want nil", err)
	}
}

func TestRetireAndDeleteGroup(t *testing.T) {
	lab, h := newLab(t)
	const graveyard = 4242
	for i := range 21 {
		if err := h.AddMacvlan(link.MacvlanSpec{Name: fmt.Sprintf("mv%d", i), Parent: parent, Mark: testMark}); err != nil {
			t.Fatal(err)
		}
	}
	// mv0 stays in group 0; mv1..mv20 are retired. Bring one up first to
	// see that Retire takes it down.
	lab.SetUp(t, "mv1")
	for i := 1; i <= 20; i++ {
		if err := h.Retire(fmt.Sprintf("mv%d", i), graveyard); err != nil {
			t.Fatal(err)
		}
	}
	got := mustGet(t, h, "mv1")
	if got.Up || got.Group != graveyard {
		t.Fatalf("retired mv1: up=%v group=%d, want down in group %d", got.Up, got.Group, graveyard)
	}

	before := names(t, h)
	if err := h.DeleteGroup(graveyard); err != nil {
		t.Fatalf("DeleteGroup: %v", err)
	}
	after := names(t, h)
	want := slices.DeleteFunc(slices.Clone(before), func(n string) bool {
		return strings.HasPrefix(n, "mv") && n != "mv0"
	})
	if !slices.Equal(after, want) {
		t.Errorf("links after DeleteGroup = %v, want %v", after, want)
	}
	if len(before)-len(after) != 20 {
		t.Errorf("DeleteGroup removed %d links, want 20", len(before)-len(after))
	}
	if info := mustGet(t, h, parent); !info.Up || info.Group != 0 {
		t.Errorf("parent changed: %+v", info)
	}

	if err := h.DeleteGroup(graveyard); err != nil {
		t.Errorf("DeleteGroup on an empty group = %v, want nil", err)
	}
}

func TestRetireMissing(t *testing.T) {
	_, h := newLab(t)
	if err := h.Retire("nope0", 7); !errors.Is(err, link.ErrNotFound) {
		t.Fatalf("Retire(missing) = %v, want ErrNotFound", err)
	}
}

func TestGroupZeroRefused(t *testing.T) {
	_, h := newLab(t)
	if err := h.DeleteGroup(0); err == nil {
		t.Error("DeleteGroup(0) = nil, want a refusal")
	}
	if err := h.Retire(parent, 0); err == nil {
		t.Error("Retire(..., 0) = nil, want a refusal")
	}
	if _, err := h.Get(parent); err != nil {
		t.Errorf("parent gone after refused group-0 calls: %v", err)
	}
}

// A retired link that the engine still holds in a container is out of the
// group delete's reach; it comes back and is deleted with the next batch.
func TestDeleteGroupOnlyThisNamespace(t *testing.T) {
	lab, h := newLab(t)
	ctr := lab.NewPeerNamespace(t)
	const graveyard = 9
	for _, n := range []string{"mv0", "mv1"} {
		if err := h.AddMacvlan(link.MacvlanSpec{Name: n, Parent: parent, Mark: testMark}); err != nil {
			t.Fatal(err)
		}
		if err := h.Retire(n, graveyard); err != nil {
			t.Fatal(err)
		}
	}
	lab.MoveTo(t, "mv1", ctr)
	if err := h.DeleteGroup(graveyard); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get("mv0"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("mv0 survived DeleteGroup: %v", err)
	}
	if info := mustGet(t, ctr.Handle(), "mv1"); info.Group != graveyard {
		t.Errorf("mv1 in the container: group %d, want %d", info.Group, graveyard)
	}
	lab.MoveBack(t, ctr, "mv1")
	if err := h.DeleteGroup(graveyard); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Get("mv1"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("mv1 survived the second DeleteGroup: %v", err)
	}
}

func TestAddVLAN(t *testing.T) {
	lab, h := newLab(t)
	linktest.SkipUnlessKind(t, lab, "vlan")
	if err := h.AddVLAN("par0.42", parent, 42); err != nil {
		t.Fatal(err)
	}
	got := mustGet(t, h, "par0.42")
	if got.Kind != "vlan" || got.VlanID != 42 || !got.Up || got.ParentIndex != mustGet(t, h, parent).Index {
		t.Errorf("got %+v, want an up vlan 42 on %s", got, parent)
	}
}

// Whatever the kernel, AddVLAN must either work or say ErrUnsupported, and
// leave nothing behind when it fails.
func TestAddVLANUnsupported(t *testing.T) {
	lab, h := newLab(t)
	ok, why := linktest.KindSupported(t, lab, "vlan")
	err := h.AddVLAN("par0.42", parent, 42)
	if ok {
		if err != nil {
			t.Fatalf("kernel has vlan links, yet AddVLAN = %v", err)
		}
		return
	}
	t.Logf("kernel lacks vlan links (%v); AddVLAN said: %v", why, err)
	if !errors.Is(err, link.ErrUnsupported) {
		t.Fatalf("AddVLAN = %v, want ErrUnsupported", err)
	}
	if _, err := h.Get("par0.42"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("failed AddVLAN left a link: %v", err)
	}
}

func TestAddVLANInvalid(t *testing.T) {
	_, h := newLab(t)
	if err := h.AddVLAN("v0", parent, 4095); err == nil || !strings.Contains(err.Error(), "1-4094") {
		t.Errorf("AddVLAN(vid 4095) = %v, want an out-of-range error", err)
	}
	if err := h.AddVLAN("v0", "eth9", 5); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("AddVLAN(missing parent) = %v, want ErrNotFound", err)
	}
}

func TestListAndNames(t *testing.T) {
	_, h := newLab(t)
	infos, err := h.List()
	if err != nil {
		t.Fatal(err)
	}
	var veth *link.Info
	for i := range infos {
		if infos[i].Name == parent {
			veth = &infos[i]
		}
	}
	if veth == nil {
		t.Fatalf("List() = %+v, missing %s", infos, parent)
	}
	if veth.Kind != "veth" || veth.MTU != parentMTU || !veth.Up || veth.ParentIndex != 0 {
		t.Errorf("List's %s = %+v, want an up veth with MTU %d and no parent", parent, *veth, parentMTU)
	}

	// A fresh namespace holds lo plus the pair.
	if got, want := names(t, h), []string{"lo", parent, linktest.PeerName(parent)}; !slices.Equal(got, sorted(want)) {
		t.Errorf("List() names = %v, want %v", got, sorted(want))
	}
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// The kernel checks every member before deleting any, so one undeletable
// link (lo here, a physical NIC on a host) makes the whole batch fail.
func TestDeleteGroupAllOrNothing(t *testing.T) {
	_, h := newLab(t)
	const graveyard = 5
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mv0", Parent: parent, Mark: testMark}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"mv0", "lo"} {
		if err := h.Retire(n, graveyard); err != nil {
			t.Fatal(err)
		}
	}
	err := h.DeleteGroup(graveyard)
	if !errors.Is(err, unix.EOPNOTSUPP) || !strings.Contains(err.Error(), "nothing was deleted") {
		t.Fatalf("DeleteGroup with lo in the group = %v, want EOPNOTSUPP explained", err)
	}
	if _, err := h.Get("mv0"); err != nil {
		t.Errorf("mv0 after a refused group delete: %v", err)
	}
}

// Open only reads here: the host's links are not the test's to change.
func TestOpenHost(t *testing.T) {
	h, err := link.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if got := names(t, h); !slices.Contains(got, "lo") {
		t.Errorf("host links = %v, want lo among them", got)
	}
	h.Close() // a second Close is harmless
}
