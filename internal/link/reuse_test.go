package link_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// Rearm turns a retired link of ours into a new endpoint's link in place:
// same index, the new name, MAC, MTU, mark, default group, still down.
func TestRearmReusesALinkInPlace(t *testing.T) {
	lab, h := newLab(t)
	lab.Veth(t, "other0", 0)
	oldMark, newMark := link.EndpointMark("old"), link.EndpointMark("new")
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mvold", Parent: parent, MTU: 1400, Mark: oldMark}); err != nil {
		t.Fatal(err)
	}
	if err := h.Retire("mvold", link.RetireGroup); err != nil {
		t.Fatal(err)
	}
	before, err := h.Get("mvold")
	if err != nil {
		t.Fatal(err)
	}
	par, err := h.Get(parent)
	if err != nil {
		t.Fatal(err)
	}
	// A container set promiscuous mode; the next one does not get it.
	if out, err := exec.Command("ip", "-n", lab.Name(), "link", "set", "mvold", "promisc", "on").CombinedOutput(); err != nil {
		t.Fatalf("ip link set promisc on: %v: %s", err, out)
	}
	mac := net.HardwareAddr{0x02, 0x42, 10, 1, 2, 3}
	spec := link.MacvlanSpec{Name: "mvnew", Parent: parent, MAC: mac, Mark: newMark}

	// Refused, and left alone: a wrong mark, mode or parent.
	for _, c := range []struct {
		what string
		mark string
		spec link.MacvlanSpec
	}{
		{"another mark", link.EndpointMark("someone"), spec},
		{"another mode", oldMark, link.MacvlanSpec{Name: "mvnew", Parent: parent, Mode: link.ModeVEPA, MAC: mac, Mark: newMark}},
		{"another parent", oldMark, link.MacvlanSpec{Name: "mvnew", Parent: "other0", MAC: mac, Mark: newMark}},
	} {
		if err := h.Rearm("mvold", c.mark, c.spec); !errors.Is(err, link.ErrNotReusable) {
			t.Errorf("Rearm with %s = %v, want ErrNotReusable", c.what, err)
		}
	}
	if got, err := h.Get("mvold"); err != nil || got.Alias != oldMark || got.Group != link.RetireGroup {
		t.Fatalf("after refused reuses: %+v, %v; want mvold untouched", got, err)
	}
	if err := h.Rearm("gone0", oldMark, spec); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("Rearm of a missing link = %v, want ErrNotFound", err)
	}

	if err := h.Rearm("mvold", oldMark, spec); err != nil {
		t.Fatal(err)
	}
	got, err := h.Get("mvnew")
	if err != nil {
		t.Fatal(err)
	}
	if got.Index != before.Index || got.MAC.String() != mac.String() || got.Alias != newMark || got.Group != 0 ||
		got.Up || got.MTU != par.MTU || got.Kind != "macvlan" || got.MacvlanMode != link.ModeBridge {
		t.Errorf("re-armed link = %+v; want index %d, MAC %s, mark %q, group 0, down, MTU %d (the parent's), bridge", got, before.Index, mac, newMark, par.MTU)
	}
	if out, err := exec.Command("ip", "-n", lab.Name(), "link", "show", "mvnew").CombinedOutput(); err != nil || strings.Contains(string(out), "PROMISC") {
		t.Errorf("ip link show mvnew: %v: %s; want it without PROMISC", err, out)
	}
	if _, err := h.Get("mvold"); !errors.Is(err, link.ErrNotFound) {
		t.Errorf("the old name still exists: %v", err)
	}
	// A name that is taken: refused before the rename, so the link keeps
	// its name and mark, for the reaper.
	if err := h.AddMacvlan(link.MacvlanSpec{Name: "mvtaken", Parent: parent, Mark: "the user's"}); err != nil {
		t.Fatal(err)
	}
	if err := h.Rearm("mvnew", newMark, link.MacvlanSpec{Name: "mvtaken", Parent: parent, MAC: mac, Mark: oldMark}); !errors.Is(err, link.ErrNotReusable) {
		t.Errorf("Rearm to a taken name = %v, want ErrNotReusable", err)
	}
	if got, err := h.Get("mvnew"); err != nil || got.Alias != newMark || got.Index != before.Index {
		t.Errorf("after a refused rename: %+v, %v; want mvnew with its mark", got, err)
	}
	if got := mustGet(t, h, "mvtaken"); got.Alias != "the user's" {
		t.Errorf("the user's link = %+v, want it untouched", got)
	}
	// A link that is up is in use: not reused.
	if err := h.SetUp("mvnew"); err != nil {
		t.Fatal(err)
	}
	if err := h.Rearm("mvnew", newMark, link.MacvlanSpec{Name: "mvnext", Parent: parent, MAC: mac, Mark: oldMark}); !errors.Is(err, link.ErrNotReusable) {
		t.Errorf("Rearm of a link that is up = %v, want ErrNotReusable", err)
	}
}

// A retired link offered for reuse can be taken by its key until a batch
// deletes it; the batch deletes only links older than ReuseGrace, Reap
// (and Stop) all of them.
func TestReaperOffersRetiredLinksForReuse(t *testing.T) {
	h, r := reaperWithLinks(t, "mv0", "mv1", "mv2")
	if _, _, ok := r.Take("par0 bridge"); ok {
		t.Fatal("Take on an empty queue handed something out")
	}
	r.RetireReusable("mv0", link.EndpointMark("mv0"), "par0 bridge")
	r.RetireReusable("mv1", link.EndpointMark("mv1"), "par0 bridge")
	r.Retire("mv2", link.EndpointMark("mv2"))
	if _, _, ok := r.Take(""); ok {
		t.Error("Take(\"\") handed out a link retired without a key")
	}
	name, mark, ok := r.Take("par0 bridge")
	if !ok || name != "mv1" || mark != link.EndpointMark("mv1") {
		t.Errorf("Take = %q, %q, %v; want the latest, mv1", name, mark, ok)
	}
	if _, _, ok := r.Take("par0 vepa"); ok {
		t.Error("Take handed out a link for another key")
	}
	// mv0 and mv2 go with the batches, once older than ReuseGrace; mv1 was
	// taken and stays.
	deadline := time.Now().Add(5 * time.Second)
	for r.Pending() > 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r.Reap() // waits for a batch in progress
	got := names(t, h)
	for _, gone := range []string{"mv0", "mv2"} {
		if slices.Contains(got, gone) {
			t.Errorf("%s not deleted; links now %v", gone, got)
		}
	}
	if !slices.Contains(got, "mv1") {
		t.Errorf("mv1 was taken for reuse but deleted; links now %v", got)
	}
}

// While Joins are taking links, a reusable link waits ReuseHold for the next
// one instead of ReuseGrace: a late Join still finds it, and no batch
// deletes it in the middle of the churn. Without a recent Take it goes after
// ReuseGrace.
func TestReaperHoldsReusableLinksLongerWhileJoinsTakeThem(t *testing.T) {
	h, r := reaperWithLinks(t, "mv0", "mv1", "mv2")
	// No Join has taken anything: mv0 goes once older than ReuseGrace.
	start := time.Now()
	r.RetireReusable("mv0", link.EndpointMark("mv0"), "k")
	for r.Pending() > 0 && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	r.Reap()
	if slices.Contains(names(t, h), "mv0") {
		t.Fatal("mv0 was not deleted")
	}
	quiet := time.Since(start)

	// A Join takes mv1; mv2, retired right after, waits for the next Join
	// for ReuseHold: still there well after ReuseGrace, then gone.
	r.RetireReusable("mv1", link.EndpointMark("mv1"), "k")
	if name, _, ok := r.Take("k"); !ok || name != "mv1" {
		t.Fatalf("Take = %q, %v", name, ok)
	}
	start = time.Now()
	r.RetireReusable("mv2", link.EndpointMark("mv2"), "k")
	time.Sleep(link.ReuseHold / 2)
	if r.Pending() != 1 {
		t.Fatalf("%v after a Take, with ReuseHold %v: %d links pending, want mv2 still offered", time.Since(start), link.ReuseHold, r.Pending())
	}
	for r.Pending() > 0 && time.Since(start) < 5*time.Second {
		time.Sleep(time.Millisecond)
	}
	held := time.Since(start)
	r.Reap()
	if got := names(t, h); slices.Contains(got, "mv2") || !slices.Contains(got, "mv1") {
		t.Fatalf("links %v: want mv2 deleted and mv1 (taken) kept", got)
	}
	if held < link.ReuseHold {
		t.Errorf("mv2 went after %v, before ReuseHold (%v), though a Join had just taken a link", held, link.ReuseHold)
	}
	t.Logf("a reusable link waited %v with no Join taking links, %v right after one did", quiet, held)
}

// reaperWithLinks is a lab with a reaper of 1 ms batches and macvlan links
// of ours on its parent, one per name.
func reaperWithLinks(t *testing.T, names ...string) (*link.Handle, *link.Reaper) {
	t.Helper()
	_, h := newLab(t)
	r := link.NewReaper(h, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Millisecond, nil)
	t.Cleanup(r.Stop)
	for _, n := range names {
		if err := h.AddMacvlan(link.MacvlanSpec{Name: n, Parent: parent, Mark: link.EndpointMark(n)}); err != nil {
			t.Fatal(err)
		}
	}
	return h, r
}
