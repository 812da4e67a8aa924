//go:build e2e

package lab

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// cutComment marks the rules CutLAN adds, so that RestoreLAN removes those
// and nothing else.
const cutComment = "mvs-lab-cut"

// cutRules are the iptables rules (filter table) that cut a node off: every
// packet its own network stack receives on, or sends out of, its LAN link.
func (n *Node) cutRules() [][]string {
	return [][]string{
		{"INPUT", "-i", n.LANLink, "-m", "comment", "--comment", cutComment, "-j", "DROP"},
		{"OUTPUT", "-o", n.LANLink, "-m", "comment", "--comment", cutComment, "-j", "DROP"},
	}
}

// CutLAN cuts the node off from the lab LAN the way a failed switch port or
// a partition would: DROP rules at the top of INPUT and OUTPUT for its LAN
// link, inside the node's own namespace (nsenter --net, not `ip netns exec`,
// which remounts /sys). The link stays up and the engine keeps running, so
// the node does not notice at once: its TCP connections (raft, dispatcher)
// just stop getting answers, as in a real partition.
//
// Only the node's own IP stack is cut. Its containers' macvlan links take
// their frames straight from the LAN link, below iptables, and keep talking
// to the LAN; ARP is not filtered either.
//
// The rules are removed by RestoreLAN, and by the test's cleanup should the
// test end first (the cleanup runs before the lab's teardown).
func (n *Node) CutLAN(t testing.TB) {
	t.Helper()
	t.Cleanup(func() {
		if removed, err := n.restoreLAN(); err != nil {
			t.Errorf("lab: %s: restore LAN at cleanup: %v", n.Name, err)
		} else if removed > 0 {
			t.Logf("lab: %s: LAN cut still in place at cleanup; %d rule(s) removed", n.Name, removed)
		}
	})
	for _, r := range n.cutRules() {
		args := append([]string{"-I", r[0], "1"}, r[1:]...)
		if err := n.iptables(args...); err != nil {
			t.Fatalf("lab: %s: cut LAN: %v", n.Name, err)
		}
	}
}

// RestoreLAN removes the rules CutLAN added (every copy of them; none is
// fine).
func (n *Node) RestoreLAN(t testing.TB) {
	t.Helper()
	if _, err := n.restoreLAN(); err != nil {
		t.Fatalf("lab: %s: restore LAN: %v", n.Name, err)
	}
}

// LANCut reports whether a rule of CutLAN is in place on the node.
func (n *Node) LANCut() bool {
	for _, r := range n.cutRules() {
		if n.iptables(append([]string{"-C"}, r...)...) == nil {
			return true
		}
	}
	return false
}

func (n *Node) restoreLAN() (removed int, err error) {
	for _, r := range n.cutRules() {
		// -C fails once no copy is left (or the chain is gone with the
		// namespace): then there is nothing to delete.
		for i := 0; i < 10 && n.iptables(append([]string{"-C"}, r...)...) == nil; i++ {
			if err := n.iptables(append([]string{"-D"}, r...)...); err != nil {
				return removed, err
			}
			removed++
		}
	}
	return removed, nil
}

// iptables runs iptables in the node's namespace. -w waits for the xtables
// lock, which every engine on the machine shares.
func (n *Node) iptables(args ...string) error {
	full := append([]string{"--net=" + n.NetNSPath(), "--", "iptables", "-w", "30"}, args...)
	out, err := exec.Command("nsenter", full...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
