// Package wiretest holds the request bodies that real Docker engines sent to
// a network-driver plugin, embedded in the test binaries that import it: the
// protocol tests decode and fuzz with every one, the driver tests replay each
// engine's sequence against a real kernel. README.md says how and on which
// engines they were captured, and what is worth noticing in them.
//
// A capture is named <engine>/<order>-<Method>.json: the engine's folder,
// the request's place in that engine's sequence, and the method it was
// posted to (POST /NetworkDriver.<Method>).
package wiretest

import (
	"cmp"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"
)

//go:embed engine-*/*.json
var captured embed.FS

// Capture is one captured request.
type Capture struct {
	Name   string // <engine>/<order>-<Method>.json, what Read takes
	Engine string // the engine's folder, e.g. engine-20.10-local
	Order  int    // its place in that engine's sequence, from 1
	Method string // it was sent to POST /NetworkDriver.<Method>
	Body   []byte // exactly as sent (empty for GetCapabilities); a fresh copy
}

// Captures returns the captures of the named engines, or of every engine when
// none is named: engine by engine in name order, each engine's in the order it
// sent them. An engine that has no folder contributes nothing.
func Captures(engines ...string) []Capture {
	names, err := fs.Glob(captured, "*/*.json")
	if err != nil {
		panic(err) // the pattern is constant and valid
	}
	var out []Capture
	for _, name := range names {
		c := parse(name)
		if len(engines) > 0 && !slices.Contains(engines, c.Engine) {
			continue
		}
		c.Body, err = captured.ReadFile(name)
		if err != nil {
			panic(err) // listed by Glob from an embedded tree
		}
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Capture) int {
		return cmp.Or(strings.Compare(a.Engine, b.Engine), cmp.Compare(a.Order, b.Order))
	})
	return out
}

// Read returns the body of the capture called name (a Capture's Name, e.g.
// "engine-20.10-local/0011-Join.json"), failing t when there is none.
func Read(t testing.TB, name string) []byte {
	t.Helper()
	b, err := captured.ReadFile(name)
	if err != nil {
		t.Fatalf("wiretest: no captured request %q (names are <engine>/<order>-<Method>.json): %v", name, err)
	}
	return b
}

// parse splits a capture's name into its engine, order and method. A file
// named otherwise is a mistake in this folder, not something to skip.
func parse(name string) Capture {
	engine, file := path.Split(name)
	order, method, ok := strings.Cut(strings.TrimSuffix(file, ".json"), "-")
	n, err := strconv.Atoi(order)
	if !ok || err != nil || n < 1 || method == "" {
		panic(fmt.Sprintf("wiretest: captured file %q is not named <order>-<Method>.json", name))
	}
	return Capture{Name: name, Engine: strings.TrimSuffix(engine, "/"), Order: n, Method: method}
}
