package main

import (
	"errors"
	"io"
)

// runStatus is `macvlan-swarm status`: the plugin's GET /status as a table.
func runStatus(args []string, out io.Writer) error {
	return errors.New("status: not built yet")
}
