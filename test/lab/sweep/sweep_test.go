package sweep

import (
	"reflect"
	"testing"
)

func TestMountsUnderDeepestFirst(t *testing.T) {
	info := []byte(`22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
100 22 254:0 /tmp/mvs-lab-abc123/node1/data /tmp/mvs-lab-abc123/node1/data rw - ext4 /dev/vda rw
101 100 0:50 / /tmp/mvs-lab-abc123/node1/data/overlay2/x/merged rw - overlay overlay rw
102 22 0:4 net:[4026532] /tmp/mvs-lab-abc123/node1/exec/netns/733983c73a9e rw - nsfs nsfs rw
103 22 0:4 net:[4026533] /tmp/mvs-lab-abc1234/node1/exec/netns/other rw - nsfs nsfs rw
104 22 0:51 / /tmp/mvs-lab-abc123/with\040space rw - tmpfs tmpfs rw
105 22 0:52 / /tmp/mvs-lab-abc123/with\040space rw - tmpfs tmpfs rw
`)
	got := MountsUnder(info, "/tmp/mvs-lab-abc123")
	want := []string{
		"/tmp/mvs-lab-abc123/node1/data/overlay2/x/merged",
		"/tmp/mvs-lab-abc123/node1/exec/netns/733983c73a9e",
		"/tmp/mvs-lab-abc123/node1/data",
		"/tmp/mvs-lab-abc123/with space",
		"/tmp/mvs-lab-abc123/with space",
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("MountsUnder:\n got %q\nwant %q", got, want)
	}
}

func TestNamesBelongToLabsOnly(t *testing.T) {
	for name, want := range map[string]bool{
		"mvs-abc123-lan":     true,
		"mvs-abc123-node1":   true,
		"mvs-abc123-node12":  true,
		"mvs-abc123-foreign": true,
		"mvs-abc123-other":   false,
		"mvs-exp":            false,
		"mvsdev":             false,
		"mvs-abc123-node":    false,
		"mvs-ABC123-node1":   false,
		"mvs-abc1234-node1":  false,
	} {
		if got := netnsPattern.MatchString(name); got != want {
			t.Errorf("namespace %q: lab-owned=%v, want %v", name, got, want)
		}
	}
	for dir, want := range map[string]string{
		"/tmp/mvs-lab-abc123":      "abc123",
		"/tmp/mvs-lab-abc123/":     "abc123",
		"/tmp/mvs-exp":             "",
		"/tmp/mvs-lab-abc123/node": "",
		"/var/mvs-lab-abc123":      "",
	} {
		if got := IDOf(dir); got != want {
			t.Errorf("IDOf(%q) = %q, want %q", dir, got, want)
		}
	}
}
