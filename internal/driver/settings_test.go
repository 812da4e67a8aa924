package driver

import (
	"strings"
	"testing"
)

func TestParseParents(t *testing.T) {
	m, err := ParseParents(" lan=eth0 , dmz=ens19.20,")
	if err != nil || len(m) != 2 || m["lan"] != "eth0" || m["dmz"] != "ens19.20" {
		t.Fatalf("m = %v, err = %v", m, err)
	}
	for _, bad := range []string{"lan", "lan=", "=eth0", "lan=eth0,lan=eth1"} {
		if _, err := ParseParents(bad); err == nil || !strings.Contains(err.Error(), "PARENTS") {
			t.Errorf("PARENTS=%q: err = %v", bad, err)
		}
	}
}
