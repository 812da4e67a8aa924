package doctor

import (
	"encoding/json"
	"fmt"
	"io"
)

// WriteText prints the report for a person: a header, the info lines, one
// line per finding (severity, check, subject, problem, fix) and a summary.
func WriteText(w io.Writer, r Report) error {
	role := map[Role]string{RoleManager: "swarm manager", RoleWorker: "swarm worker", RoleNone: "not in a swarm"}[r.Role]
	if _, err := fmt.Fprintf(w, "macvlan-swarm doctor on %s (%s), plugin %s\n", r.Node, role, r.Plugin); err != nil {
		return err
	}
	for _, i := range r.Info {
		fmt.Fprintf(w, "info: %s\n", i)
	}
	var errs, warns int
	for _, f := range r.Findings {
		if f.Severity == SevError {
			errs++
		} else {
			warns++
		}
		fmt.Fprintf(w, "%-7s %s %s: %s. Fix: %s\n", f.Severity, f.Check, f.Subject, f.Problem, f.Fix)
	}
	var err error
	if len(r.Findings) == 0 {
		_, err = fmt.Fprintln(w, "no problems found")
	} else {
		_, err = fmt.Fprintf(w, "%d error(s), %d warning(s)\n", errs, warns)
	}
	return err
}

// WriteJSON prints the report as one JSON object for scripts.
func WriteJSON(w io.Writer, r Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
