package driver

import (
	"fmt"
	"strings"
)

// The node-level settings that name this node's interfaces (PARENTS,
// HOST_ADDRESS) share one shape: comma-separated key=value pairs, blanks
// around them ignored, empty entries skipped. They are read here, once, for
// the daemon and for the doctor (which must read them as the daemon does).

// settingPairs splits a key=value list; shape and example go into the
// message for an entry that is not a pair ("alias=interface",
// "PARENTS=lan=eth0,dmz=ens19.20").
func settingPairs(setting, v, shape, example string) ([][2]string, error) {
	var out [][2]string
	for _, pair := range strings.Split(v, ",") {
		pair = strings.TrimSpace(pair)
		if pair == "" {
			continue
		}
		key, val, ok := strings.Cut(pair, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok || key == "" || val == "" {
			return nil, fmt.Errorf("%s entry %q is not %s (e.g. %s)", setting, pair, shape, example)
		}
		out = append(out, [2]string{key, val})
	}
	return out, nil
}

// ParseParents reads the node's PARENTS setting: alias=interface pairs, so
// that "-o parent=lan" means this node's interface (Config.Parents).
func ParseParents(v string) (map[string]string, error) {
	pairs, err := settingPairs("PARENTS", v, "alias=interface", "PARENTS=lan=eth0,dmz=ens19.20")
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, p := range pairs {
		if _, dup := m[p[0]]; dup {
			return nil, fmt.Errorf("PARENTS names alias %q twice", p[0])
		}
		m[p[0]] = p[1]
	}
	return m, nil
}
