package link_test

import (
	"io"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/macvlan-swarm/macvlan-swarm/internal/link"
)

// The reaper deletes a queued link only if it still carries the mark it was
// queued with, in one batch with the rest; Forget takes a link off the queue.
func TestReaperChecksTheMarkAndForgets(t *testing.T) {
	_, h := newLab(t)
	var batches, deleted int
	r := link.NewReaper(h, slog.New(slog.NewTextHandler(io.Discard, nil)), time.Hour, func(n int, _ time.Duration) {
		batches++
		deleted += n
	})
	defer r.Stop()
	add := func(name, mark string) {
		t.Helper()
		if err := h.AddMacvlan(link.MacvlanSpec{Name: name, Parent: parent, Mark: mark}); err != nil {
			t.Fatal(err)
		}
	}
	add("mv0", link.EndpointMark("a"))
	add("mv1", link.EndpointMark("b"))
	add("mv2", link.EndpointMark("c"))
	add("mv3", link.EndpointMark("d"))
	r.Retire("mv0", link.EndpointMark("a"))
	r.Retire("mv1", link.EndpointMark("b"))
	r.Retire("mv2", link.EndpointMark("c"))
	r.Retire("gone0", link.EndpointMark("e")) // went with its namespace
	// mv1 is replaced by someone else's link of the same name before the
	// batch; mv2 is made again for its endpoint and taken off the queue.
	if err := h.Delete("mv1"); err != nil {
		t.Fatal(err)
	}
	add("mv1", "the user's")
	r.Forget("mv2")
	if got := r.Pending(); got != 3 {
		t.Fatalf("pending = %d, want 3 (mv0, mv1, gone0)", got)
	}
	if q := r.Queued(); len(q) != 3 || !q["mv0"] || !q["mv1"] || !q["gone0"] || q["mv2"] {
		t.Fatalf("queued = %v, want mv0, mv1, gone0", q)
	}
	r.Reap()
	// Reap runs in this goroutine: the observer has been told already.
	if batches != 1 || deleted != 1 {
		t.Errorf("observer told %d batches, %d links deleted; want 1 batch deleting mv0", batches, deleted)
	}
	got := names(t, h)
	for _, want := range []string{"mv1", "mv2", "mv3", parent} {
		if !slices.Contains(got, want) {
			t.Errorf("%s deleted; links now %v", want, got)
		}
	}
	if slices.Contains(got, "mv0") {
		t.Errorf("mv0 survived the batch; links now %v", got)
	}
	if r.Pending() != 0 {
		t.Errorf("pending after a batch = %d", r.Pending())
	}
}
