// Package store saves the driver's networks and endpoints in a bbolt file.
// It is the only importer of bbolt. Its API speaks the typed model
// (internal/model); the JSON records and their conversion are in records.go.
//
// The engine never replays CreateNetwork or CreateEndpoint to a remote driver
// (not after a plugin restart, an upgrade or a daemon restart), so everything
// the driver must remember lives here. Records are JSON with explicit field
// names; the file carries a schema version and a newer file is refused rather
// than misread.
package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/macvlan-swarm/macvlan-swarm/internal/model"
)

// SchemaVersion is the layout written by this build. Bump it when a record's
// meaning changes and teach Open to migrate the older layout.
const SchemaVersion = 1

// FileName is the state file's name inside the state directory.
const FileName = "macvlan-swarm.db"

var (
	bucketMeta      = []byte("meta")
	bucketNetworks  = []byte("networks")
	bucketEndpoints = []byte("endpoints")
	keySchema       = []byte("schema")
)

// Store is an open state file. Its methods are safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (creating if needed) the state file in dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory %q: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("open state file %q: %w (is another copy of the plugin running on the same state directory?)", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketNetworks, bucketEndpoints, bucketIPAMPools, bucketIPAMUsed, bucketIPAMReleased} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		raw := meta.Get(keySchema)
		if raw == nil {
			return meta.Put(keySchema, []byte(strconv.Itoa(SchemaVersion)))
		}
		v, err := strconv.Atoi(string(raw))
		if err != nil {
			return fmt.Errorf("schema version %q is not a number", raw)
		}
		if v > SchemaVersion {
			return fmt.Errorf("state file was written by a newer macvlan-swarm (schema %d, this build reads up to %d): upgrade the plugin instead of downgrading it", v, SchemaVersion)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("state file %q: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the file.
func (s *Store) Close() error { return s.db.Close() }

// Path is the state file's path.
func (s *Store) Path() string { return s.db.Path() }

// Change is one atomic change of the saved state: everything in it is
// written in one bbolt transaction (one fsync), or nothing is. Deleting a
// record that is not there is not an error.
type Change struct {
	PutNetworks     []*model.Network
	DeleteNetworks  []string
	PutEndpoints    []*model.Endpoint
	DeleteEndpoints []string
}

// Empty reports a change that changes nothing.
func (c Change) Empty() bool {
	return len(c.PutNetworks)+len(c.DeleteNetworks)+len(c.PutEndpoints)+len(c.DeleteEndpoints) == 0
}

// Apply writes c in one transaction.
func (s *Store) Apply(c Change) error {
	if c.Empty() {
		return nil
	}
	type kv struct{ k, v []byte }
	var nets, eps []kv
	for _, n := range c.PutNetworks {
		raw, err := encode(n.ID, fromNetwork(n))
		if err != nil {
			return err
		}
		nets = append(nets, kv{[]byte(n.ID), raw})
	}
	for _, e := range c.PutEndpoints {
		raw, err := encode(e.ID, fromEndpoint(e))
		if err != nil {
			return err
		}
		eps = append(eps, kv{[]byte(e.ID), raw})
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		nb, eb := tx.Bucket(bucketNetworks), tx.Bucket(bucketEndpoints)
		for _, id := range c.DeleteEndpoints {
			if err := eb.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, id := range c.DeleteNetworks {
			if err := nb.Delete([]byte(id)); err != nil {
				return err
			}
		}
		for _, r := range nets {
			if err := nb.Put(r.k, r.v); err != nil {
				return err
			}
		}
		for _, r := range eps {
			if err := eb.Put(r.k, r.v); err != nil {
				return err
			}
		}
		return nil
	})
}

func encode(id string, v any) ([]byte, error) {
	if id == "" {
		return nil, errors.New("record without an id")
	}
	return json.Marshal(v)
}

// BadRecord names a record that did not decode.
type BadRecord struct {
	Kind string // "network" or "endpoint"
	Key  string
	Err  string
}

// Load reads every record. Records that do not decode or convert are
// reported in bad and skipped, so one damaged record cannot keep the plugin
// down; the caller drops them (Change.DeleteNetworks/DeleteEndpoints with
// their keys).
func (s *Store) Load() (nets []*model.Network, eps []*model.Endpoint, bad []BadRecord, err error) {
	now := time.Now().UTC()
	err = s.db.View(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketNetworks).ForEach(func(k, v []byte) error {
			var r networkRecord
			n, cerr := decode(k, v, &r, func() (*model.Network, error) { return r.model() }, func() string { return r.ID })
			if cerr != nil {
				bad = append(bad, BadRecord{"network", string(k), cerr.Error()})
				return nil
			}
			nets = append(nets, n)
			return nil
		}); err != nil {
			return err
		}
		return tx.Bucket(bucketEndpoints).ForEach(func(k, v []byte) error {
			var r endpointRecord
			e, cerr := decode(k, v, &r, func() (*model.Endpoint, error) { return r.model(now) }, func() string { return r.ID })
			if cerr != nil {
				bad = append(bad, BadRecord{"endpoint", string(k), cerr.Error()})
				return nil
			}
			eps = append(eps, e)
			return nil
		})
	})
	return nets, eps, bad, err
}

// decode unmarshals one record, checks that it sits under its own id, and
// converts it to the model.
func decode[M any](key, raw []byte, rec any, conv func() (M, error), id func() string) (M, error) {
	var zero M
	if err := json.Unmarshal(raw, rec); err != nil {
		return zero, err
	}
	if id() != string(key) {
		return zero, fmt.Errorf("record of %q stored under key %q", id(), key)
	}
	return conv()
}
