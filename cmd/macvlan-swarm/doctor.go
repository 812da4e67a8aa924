package main

import (
	"errors"
	"io"
)

// runDoctor is `macvlan-swarm doctor`: this node's and the cluster's checks.
func runDoctor(args []string, out io.Writer) error {
	return errors.New("doctor: not built yet")
}
