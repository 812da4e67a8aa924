package main

import (
	"errors"
	"flag"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseDoctorFlags(t *testing.T) {
	o, err := parseDoctorFlags([]string{"--host", "unix:///x.sock", "--plugin", "reg:5000/macvlan-swarm:1", "--json", "--timeout", "5s"}, io.Discard)
	if err != nil || o.host != "unix:///x.sock" || o.plugin != "reg:5000/macvlan-swarm:1" || !o.json || o.timeout != 5*time.Second {
		t.Fatalf("%+v, %v", o, err)
	}
	if o, err := parseDoctorFlags(nil, io.Discard); err != nil || o.timeout != 30*time.Second || o.json {
		t.Fatalf("defaults %+v, %v", o, err)
	}
	for _, tt := range []struct {
		args []string
		err  string
	}{
		{[]string{"--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"node2"}, `doctor takes no arguments, got "node2"`},
		{[]string{"--timeout", "0s"}, "--timeout 0s: give a positive duration"},
		{[]string{"--timeout", "soon"}, `invalid value "soon" for flag -timeout`},
		{[]string{"--plugin", "macvlan swarm"}, `--plugin "macvlan swarm" is not a plugin name`},
		{[]string{"--plugin", "macvlan-swarm:"}, "is not a plugin name"},
		{[]string{"--plugin"}, "flag needs an argument: -plugin"},
	} {
		if _, err := parseDoctorFlags(tt.args, io.Discard); err == nil || !strings.Contains(err.Error(), tt.err) {
			t.Errorf("%q: err = %v, want %q", tt.args, err, tt.err)
		}
	}
	if _, err := parseDoctorFlags([]string{"-h"}, io.Discard); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("-h: err = %v", err)
	}
}

// TestRunDoctorNoEngine: an engine that cannot be reached is a plain error
// naming the address, not a report with exit status 1.
func TestRunDoctorNoEngine(t *testing.T) {
	sock := "unix://" + filepath.Join(t.TempDir(), "nothing.sock")
	err := runDoctor([]string{"--host", sock, "--timeout", "2s"}, io.Discard)
	var code exitCode
	if err == nil || errors.As(err, &code) || !strings.Contains(err.Error(), "cannot reach the Docker engine at "+sock) {
		t.Fatalf("err = %v", err)
	}
	if err := runDoctor([]string{"--host", "tcp://[bad"}, io.Discard); err == nil || errors.As(err, &code) {
		t.Fatalf("bad host: err = %v", err)
	}
}
